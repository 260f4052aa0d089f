//! `POST /internal/v1/users/{id}/imports`: merge an `.apkg` into the user's collection
//! (docs/design.md#server-side-import), and `GET /internal/v1/users/by-username/{name}` for the
//! command-line client.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;

use crate::db::users::DjangoUser;
use crate::error::{ApiError, ApiResult};
use crate::import::ImportSummary;
use crate::state::AppState;
use crate::transport::import_body::{idempotency_key, spool_package};

pub async fn import(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Json<ImportSummary>> {
    let key = idempotency_key(&headers)?;
    super::known_user::require_user(&state, user_id).await?;
    let user = state.users.user(user_id);
    user.prepare_folder().await?;
    let (package, sha256) =
        spool_package(body, state.settings.max_body_bytes(), user.folder()).await?;
    let summary = user.import_package(key, package, sha256).await?;
    Ok(Json(summary))
}

#[derive(Serialize)]
pub struct UserLookup {
    user_id: i64,
    username: String,
    is_active: bool,
}

/// What the lookup shows of a Django user: never the password hash.
impl From<DjangoUser> for UserLookup {
    fn from(user: DjangoUser) -> Self {
        Self {
            user_id: user.id,
            username: user.username,
            is_active: user.is_active,
        }
    }
}

pub async fn user_by_username(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<Json<UserLookup>> {
    let user = state
        .db
        .find_user_by_username(&username)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?;
    Ok(Json(user.into()))
}
