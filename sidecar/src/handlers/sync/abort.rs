//! `POST /sync/abort`: roll back the active sync. Idempotent, and the session key is not
//! checked, as on the official server (docs/sync-protocol.md#abort).

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn abort(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let _: EmptyInput = read_json(body, state.settings.limits.json_body()).await?;
    state.users.user(user.id).abort().await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
