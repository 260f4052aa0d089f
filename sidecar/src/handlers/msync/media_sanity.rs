//! `POST /msync/mediaSanity`: compare the number of live files.

use serde::Deserialize;

use super::wrapped;
use crate::error::ApiResult;
use crate::handlers::Continuing;
use crate::transport::SyncResponse;

#[derive(Deserialize)]
pub struct MediaSanityRequest {
    local: i64,
}

pub async fn media_sanity(call: Continuing<MediaSanityRequest>) -> ApiResult<SyncResponse> {
    let totals = call.user.media_totals().await?;
    if totals.total_files == call.input.local {
        wrapped("OK").await
    } else {
        tracing::info!(
            user_id = call.user.user_id(),
            client = call.input.local,
            server = totals.total_files,
            "media sanity check failed; the client will rescan"
        );
        wrapped("mediaSanity").await
    }
}
