//! `POST /msync/begin`: the server's media USN, for a standalone media sync.

use serde::{Deserialize, Serialize};

use super::wrapped;
use crate::error::{ApiError, ApiResult};
use crate::handlers::UserCall;
use crate::transport::SyncResponse;

#[derive(Deserialize)]
pub struct BeginRequest {
    #[serde(rename = "v", default)]
    client_version: String,
}

#[derive(Serialize)]
struct BeginResponse {
    usn: i64,
    /// Legacy media session key; clients of v11 ignore it, older ones echo it back.
    sk: String,
}

pub async fn begin(call: UserCall<BeginRequest>) -> ApiResult<SyncResponse> {
    if call.input.client_version.is_empty() {
        return Err(ApiError::bad_request("begin needs the client version"));
    }
    let usn = call.user.media_usn().await?;
    wrapped(BeginResponse {
        usn,
        sk: call.header.host_key,
    })
    .await
}
