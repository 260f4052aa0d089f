//! `POST /sync/chunk`: the next batch of the server's pending rows.

use crate::error::ApiResult;
use crate::handlers::{EmptyInput, InSession, json_answer};
use crate::transport::SyncResponse;

pub async fn chunk(call: InSession<EmptyInput>) -> ApiResult<SyncResponse> {
    json_answer(call.user.chunk(&call.header.session_key)).await
}
