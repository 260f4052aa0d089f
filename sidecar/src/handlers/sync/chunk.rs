//! `POST /sync/chunk`: the next batch of the server's pending rows.

use crate::error::ApiResult;
use crate::handlers::{EmptyInput, InSession, json_answer};
use crate::transport::SyncResponse;
use crate::user_data::NextChunk;

pub async fn chunk(call: InSession<EmptyInput>) -> ApiResult<SyncResponse> {
    json_answer(
        call.user
            .in_session(&call.header.session_key, NextChunk, call.body_len),
    )
    .await
}
