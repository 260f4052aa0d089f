//! `POST /msync/downloadFiles`: a zip holding a prefix of the requested files.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct DownloadFilesRequest {
    files: Vec<String>,
}

pub async fn download_files(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let request: DownloadFilesRequest = read_json(body, state.settings.limits.json_body()).await?;
    let zip = state
        .users
        .user(user.id)
        .media_download(request.files, &client, started)
        .await?;
    SyncResponse::file(zip)
}
