//! The internal API, for Django only: its own listener, and a bearer token on every call
//! (docs/design.md#processes-and-listeners). nginx never routes here.

pub mod deleted_users;
pub mod host_keys;
pub mod imports;
pub mod known_user;
pub mod metrics;
pub mod users;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, post};

use crate::auth::host_key::constant_time_eq;
use crate::error::ApiError;
use crate::state::AppState;

pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route(
            "/internal/v1/users/{user_id}/host-keys",
            delete(host_keys::revoke_all),
        )
        .route("/internal/v1/users/{user_id}/stats", get(users::stats))
        .route("/internal/v1/users/{user_id}/reset", post(users::reset))
        .route(
            "/internal/v1/users/{user_id}/imports",
            post(imports::import),
        )
        .route(
            "/internal/v1/users/by-username/{username}",
            get(imports::user_by_username),
        )
        .route("/internal/v1/deleted-users", get(deleted_users::list))
        .route(
            "/internal/v1/deleted-users/{user_id}",
            delete(deleted_users::remove),
        )
        .route("/metrics", get(metrics::metrics))
        .route_layer(middleware::from_fn_with_state(state, require_token))
}

async fn require_token(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = state
        .settings
        .internal_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Err(ApiError::Forbidden(
            "internal API disabled: SIDECAR_INTERNAL_TOKEN is not set".into(),
        ));
    };
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented, expected) {
        return Err(ApiError::Forbidden("missing or wrong bearer token".into()));
    }
    Ok(next.run(request).await)
}
