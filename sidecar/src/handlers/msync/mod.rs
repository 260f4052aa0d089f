//! `/msync/*`: media sync (docs/sync-protocol.md#media-sync). Every JSON answer is wrapped as
//! `{"data": …, "err": ""}`; `downloadFiles` answers a bare zip.

pub mod begin;
pub mod download_files;
pub mod media_changes;
pub mod media_sanity;
pub mod upload_changes;

use axum::Router;
use axum::routing::post;
use serde::Serialize;

use crate::error::ApiResult;
use crate::state::AppState;
use crate::transport::SyncResponse;

pub fn router() -> Router<AppState> {
    super::post_calls![
        "/mediaChanges" => media_changes,
        "/uploadChanges" => upload_changes,
        "/downloadFiles" => download_files,
        "/mediaSanity" => media_sanity,
    ]
    // Legacy clients send `GET /msync/begin?k=…&v=…`; the legacy transport turns it into
    // the same call.
    .route("/begin", post(begin::begin).get(begin::begin))
    .fallback(super::unknown_method("media sync"))
}

#[derive(Serialize)]
struct Wrapped<T: Serialize> {
    data: T,
    err: &'static str,
}

/// Legacy clients need the `err` key even on success.
pub async fn wrapped<T: Serialize>(data: T) -> ApiResult<SyncResponse> {
    SyncResponse::json(&Wrapped { data, err: "" }).await
}
