//! `POST /msync/mediaSanity`: compare the number of live files.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct MediaSanityRequest {
    local: i64,
}

pub async fn media_sanity(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: MediaSanityRequest = read_json(body, state.settings.limits.json_body()).await?;
    let totals = state.users.user(user.id).media_totals().await?;
    if totals.total_files == request.local {
        wrapped("OK").await
    } else {
        tracing::info!(
            user_id = user.id,
            client = request.local,
            server = totals.total_files,
            "media sanity check failed; the client will rescan"
        );
        wrapped("mediaSanity").await
    }
}
