//! `POST /sync/meta`: the collection's state, from which the client decides what to do.

use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::handlers::UserCall;
use crate::transport::SyncResponse;
use crate::transport::header::{SYNC_VERSION_MAX, SYNC_VERSION_MIN};

#[derive(Deserialize)]
pub struct MetaRequest {
    #[serde(rename = "v", default)]
    sync_version: i64,
    #[serde(rename = "cv", default)]
    client_version: String,
}

#[derive(Serialize)]
struct MetaResponse {
    #[serde(rename = "mod")]
    modified: i64,
    #[serde(rename = "scm")]
    schema: i64,
    usn: i32,
    /// Seconds, unlike every other time here: the client checks its clock against it.
    #[serde(rename = "ts")]
    server_time: i64,
    #[serde(rename = "msg")]
    message: String,
    #[serde(rename = "cont")]
    should_continue: bool,
    #[serde(rename = "hostNum")]
    host_number: u32,
    empty: bool,
    media_usn: i64,
}

pub async fn meta(call: UserCall<MetaRequest>) -> ApiResult<SyncResponse> {
    let request = call.input;
    if !(i64::from(SYNC_VERSION_MIN)..=i64::from(SYNC_VERSION_MAX)).contains(&request.sync_version)
    {
        return Err(ApiError::ClientTooOld(format!(
            "sync version {} is not supported",
            request.sync_version
        )));
    }
    let collection = call.user.meta().await?;
    tracing::debug!(user_id = call.user.user_id(), client = %request.client_version, "meta");
    // A legacy client that cannot handle this collection's scheduler is told why.
    let refusal = collection.features.refusal_for(request.sync_version);
    SyncResponse::json(&MetaResponse {
        modified: collection.modified_ms,
        schema: collection.schema_ms,
        usn: collection.usn,
        server_time: collection.now_ms / 1000,
        message: refusal.unwrap_or_default().to_string(),
        should_continue: refusal.is_none(),
        host_number: 0,
        empty: collection.empty,
        media_usn: collection.media_usn,
    })
    .await
}
