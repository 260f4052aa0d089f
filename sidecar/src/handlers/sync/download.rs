//! `POST /sync/download`: a full download sends the whole collection file
//! (docs/sync-protocol.md#full-download).

use crate::error::ApiResult;
use crate::handlers::{EmptyInput, LoggedCall, SyncJson};
use crate::transport::SyncResponse;

pub async fn download(call: LoggedCall, _: SyncJson<EmptyInput>) -> ApiResult<SyncResponse> {
    SyncResponse::file(call.user.full_download(&call.client, call.started).await?)
}
