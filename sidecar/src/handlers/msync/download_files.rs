//! `POST /msync/downloadFiles`: a zip holding a prefix of the requested files.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

use crate::error::ApiResult;
use crate::handlers::LoggedCall;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct DownloadFilesRequest {
    files: Vec<String>,
}

pub async fn download_files(
    State(state): State<AppState>,
    call: LoggedCall,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: DownloadFilesRequest = read_json(body, state.settings.limits.json_body()).await?;
    let zip = call
        .user
        .media_download(request.files, &call.client, call.started)
        .await?;
    SyncResponse::file(zip)
}
