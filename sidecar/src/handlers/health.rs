//! `GET /health`: is the database reachable and the data folder writable?

use axum::extract::State;
use axum::http::StatusCode;

use crate::state::AppState;

pub async fn health(State(state): State<AppState>) -> (StatusCode, &'static str) {
    let database_ok = state.db.ping().await;
    let data_ok = state.users.writable().await;
    match (database_ok, data_ok) {
        (true, true) => (StatusCode::OK, "ok\n"),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable\n"),
        (_, false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "data folder not writable\n",
        ),
    }
}
