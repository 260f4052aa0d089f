//! `POST /sync/applyChunk`: merge a batch of the client's rows.

use crate::error::ApiResult;
use crate::handlers::{InSession, json_answer};
use crate::normal_sync::wire::ApplyChunkRequest;
use crate::transport::SyncResponse;

pub async fn apply_chunk(call: InSession<ApplyChunkRequest>) -> ApiResult<SyncResponse> {
    json_answer(
        call.user
            .in_session(&call.header.session_key, call.input, call.body_len),
    )
    .await
}
