//! `POST /msync/mediaChanges`: changes after the client's last media USN, oldest first.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct MediaChangesRequest {
    #[serde(rename = "lastUsn")]
    last_usn: i64,
}

pub async fn media_changes(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: MediaChangesRequest = read_json(body, state.settings.limits.json_body()).await?;
    let changes = state
        .users
        .user(user.id)
        .media_changes(request.last_usn)
        .await?;
    let rows: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let sha1 = change.sha1.map(hex::encode).unwrap_or_default();
            json!([change.name, change.usn, sha1])
        })
        .collect();
    wrapped(rows).await
}
