//! `POST /sync/applyChunk`: merge a batch of the client's rows.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::wire::ApplyChunkRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_chunk(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let user = state.users.user(user.id);
    // Cheap first: without the matching sync, the body is never read.
    user.ensure_session(&header.session_key).await?;
    let request: ApplyChunkRequest = read_json(body, state.settings.limits.json_body()).await?;
    user.apply_chunk(&header.session_key, request).await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
