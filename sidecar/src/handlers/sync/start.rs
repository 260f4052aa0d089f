//! `POST /sync/start`: open a normal sync and send the server's deletions.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::wire::StartRequest;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::{SyncResponse, read_json};

pub async fn start(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: StartRequest = read_json(body, state.settings.limits.json_body()).await?;
    let graves = state
        .users
        .user(user.id)
        .start_sync(header.session_key, request, client)
        .await?;
    SyncResponse::json(&graves).await
}
