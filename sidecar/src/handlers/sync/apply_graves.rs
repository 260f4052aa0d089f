//! `POST /sync/applyGraves`: the client's deletions, in chunks of up to 250 ids.

use crate::error::ApiResult;
use crate::handlers::{InSession, json_answer};
use crate::normal_sync::wire::ApplyGravesRequest;
use crate::transport::SyncResponse;

pub async fn apply_graves(call: InSession<ApplyGravesRequest>) -> ApiResult<SyncResponse> {
    json_answer(
        call.user
            .in_session(&call.header.session_key, call.input, call.body_len),
    )
    .await
}
