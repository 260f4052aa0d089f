//! `POST /msync/begin`: the server's media USN, for a standalone media sync.

use axum::body::Body;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use super::wrapped;
use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct BeginRequest {
    #[serde(rename = "v", default)]
    client_version: String,
}

#[derive(Serialize)]
struct BeginResponse {
    usn: i64,
    /// Legacy media session key; clients of v11 ignore it, older ones echo it back.
    sk: String,
}

pub async fn begin(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: BeginRequest = read_json(body, state.settings.limits.json_body()).await?;
    if request.client_version.is_empty() {
        return Err(ApiError::bad_request("begin needs the client version"));
    }
    let usn = state.users.user(user.id).media_usn().await?;
    wrapped(BeginResponse {
        usn,
        sk: header.host_key,
    })
    .await
}
