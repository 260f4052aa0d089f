//! `POST /sync/hostKey`: log in with Django credentials, receive a host key.

use axum::body::Body;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::auth::{ClientIp, login};
use crate::error::ApiResult;
use crate::state::AppState;
use crate::transport::{SyncHeader, SyncResponse, read_json};

#[derive(Deserialize)]
struct HostKeyRequest {
    #[serde(rename = "u")]
    username: String,
    #[serde(rename = "p")]
    password: String,
}

#[derive(Serialize)]
struct HostKeyResponse {
    key: String,
}

pub async fn host_key(
    State(state): State<AppState>,
    header: SyncHeader,
    ClientIp(ip): ClientIp,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: HostKeyRequest = read_json(body, state.settings.limits.login_body()).await?;
    let key = login::login(
        &state,
        &request.username,
        &request.password,
        ip,
        &header.client_version,
    )
    .await?;
    SyncResponse::json(&HostKeyResponse { key }).await
}
