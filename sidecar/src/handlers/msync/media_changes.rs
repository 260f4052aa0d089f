//! `POST /msync/mediaChanges`: changes after the client's last media USN, oldest first.

use serde::Deserialize;
use serde_json::{Value, json};

use super::wrapped;
use crate::error::ApiResult;
use crate::handlers::Continuing;
use crate::transport::SyncResponse;

#[derive(Deserialize)]
pub struct MediaChangesRequest {
    #[serde(rename = "lastUsn")]
    last_usn: i64,
}

pub async fn media_changes(call: Continuing<MediaChangesRequest>) -> ApiResult<SyncResponse> {
    let changes = call.user.media_changes(call.input.last_usn).await?;
    let rows: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let sha1 = change.sha1.map(hex::encode).unwrap_or_default();
            json!([change.name, change.usn, sha1])
        })
        .collect();
    wrapped(rows).await
}
