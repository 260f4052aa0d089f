//! `POST /msync/downloadFiles`: a zip holding a prefix of the requested files.

use serde::Deserialize;

use crate::error::ApiResult;
use crate::handlers::{ContinuingLogged, SyncJson};
use crate::transport::SyncResponse;

#[derive(Deserialize)]
pub struct DownloadFilesRequest {
    files: Vec<String>,
}

pub async fn download_files(
    call: ContinuingLogged,
    SyncJson(request): SyncJson<DownloadFilesRequest>,
) -> ApiResult<SyncResponse> {
    let zip = call
        .user
        .media_download(request.files, &call.client, call.started);
    SyncResponse::file(zip.await?)
}
