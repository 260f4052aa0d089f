//! `DELETE /internal/v1/users/{id}/host-keys`: log a user out of every device.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};

use crate::error::ApiResult;
use crate::state::AppState;

pub async fn revoke_all(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
) -> ApiResult<Json<Value>> {
    super::known_user::require_user(&state, user_id).await?;
    let revoked = state.db.delete_host_keys_of_user(user_id).await?;
    tracing::info!(user_id, revoked, "host keys revoked");
    Ok(Json(json!({ "revoked": revoked })))
}
