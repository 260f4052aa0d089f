//! `POST /sync/finish`: commit the sync; answers the new `mod` as a bare number.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn finish(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let user = state.users.user(user.id);
    // Cheap first: without the matching sync, the body is never read.
    user.ensure_session(&header.session_key).await?;
    let _: EmptyInput = read_json(body, state.settings.limits.json_body()).await?;
    let modified = user.finish(&header.session_key).await?;
    SyncResponse::json(&modified).await
}
