//! `POST /msync/downloadFiles`: a zip holding a prefix of the requested files.

use axum::body::Body;
use axum::extract::State;
use serde::Deserialize;

use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::media::MediaDb;
use crate::media::download_zip::{DownloadError, build_download};
use crate::state::AppState;
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine};
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
    let request: DownloadFilesRequest = read_json(body, state.body_limits()).await?;
    let requested = request.files.len();
    let files = state.data.user(user.id);
    let slot = state.registry.lock(user.id).await;
    let zip = tokio::task::spawn_blocking(move || {
        let mut db = MediaDb::open(&files).map_err(DownloadError::Other)?;
        build_download(&files, &mut db, &request.files)
    })
    .await?;
    drop(slot);
    match zip {
        Ok(zip) => {
            SyncLine {
                kind: Kind::Media,
                user_id: user.id,
                client: &client,
                outcome: "downloaded",
                usn_before: None,
                usn_after: None,
                received: Counts::default(),
                sent: Counts::default().with("files_requested", requested).with(
                    "zip_bytes",
                    zip.as_file().metadata().map(|m| m.len()).unwrap_or(0),
                ),
                started,
            }
            .emit();
            SyncResponse::file(zip)
        }
        Err(DownloadError::TooMany) => {
            Err(ApiError::bad_request(DownloadError::TooMany.to_string()))
        }
        Err(err @ DownloadError::Missing(_)) => Err(ApiError::Conflict(err.to_string())),
        Err(DownloadError::Other(err)) => Err(ApiError::Internal(err)),
    }
}
