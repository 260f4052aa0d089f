//! `POST /sync/download`: a full download sends the whole collection file
//! (docs/sync-protocol.md#full-download).

use axum::body::Body;
use axum::extract::State;

use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::handlers::LoggedCall;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn download(
    State(state): State<AppState>,
    call: LoggedCall,
    body: Body,
) -> ApiResult<SyncResponse> {
    let _: EmptyInput = read_json(body, state.settings.limits.json_body()).await?;
    let snapshot = call.user.full_download(&call.client, call.started).await?;
    SyncResponse::file(snapshot)
}
