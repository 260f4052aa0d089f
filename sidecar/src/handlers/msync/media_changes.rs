//! `POST /msync/mediaChanges`: changes after the client's last media USN, oldest first.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;
use serde_json::{Value, json};

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::media::MediaDb;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

const MAX_CHANGES_PER_CALL: usize = 1000;

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
    let request: MediaChangesRequest = read_json(body, state.body_limits()).await?;
    let files = state.data.user(user.id);
    let slot = state.registry.lock(user.id).await;
    let changes = tokio::task::spawn_blocking(move || {
        MediaDb::open(&files)?.changes_since(request.last_usn, MAX_CHANGES_PER_CALL)
    })
    .await??;
    drop(slot);
    let rows: Vec<Value> = changes
        .into_iter()
        .map(|change| {
            let sha1 = change.sha1.map(hex::encode).unwrap_or_default();
            json!([change.name, change.usn, sha1])
        })
        .collect();
    wrapped(rows).await
}
