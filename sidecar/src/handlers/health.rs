//! `GET /health`: is the database reachable and the data folder writable?
//!
//! 200 when both are, else 503; the JSON body names each part (`"ok"` or what failed), and in
//! cluster mode the node.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

/// How long the database may take to answer `SELECT 1` before it counts as unreachable.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn health(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let (database_ok, data_ok) = tokio::join!(
        async {
            tokio::time::timeout(DATABASE_TIMEOUT, state.db.ping())
                .await
                .unwrap_or(false)
        },
        state.users.writable()
    );
    let status = if database_ok && data_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = json!({
        "status": if status == StatusCode::OK { "ok" } else { "unavailable" },
        "database": if database_ok { "ok" } else { "unreachable" },
        "data_dir": if data_ok { "ok" } else { "not writable" },
    });
    if let Some(node) = &state.settings.node_id {
        body["node"] = json!(node);
    }
    (status, Json(body))
}
