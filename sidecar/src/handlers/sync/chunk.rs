//! `POST /sync/chunk`: the next batch of the server's pending rows.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn chunk(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let user = state.users.user(user.id);
    // Cheap first: without the matching sync, the body is never read.
    user.ensure_session(&header.session_key).await?;
    let _: EmptyInput = read_json(body, state.settings.limits.json_body()).await?;
    let chunk = user.chunk(&header.session_key).await?;
    SyncResponse::json(&chunk).await
}
