//! `POST /sync/sanityCheck2`: compare counts; a mismatch discards the whole sync.

use crate::error::ApiResult;
use crate::handlers::{InSession, json_answer};
use crate::normal_sync::wire::SanityCheckRequest;
use crate::transport::SyncResponse;

pub async fn sanity_check(call: InSession<SanityCheckRequest>) -> ApiResult<SyncResponse> {
    json_answer(
        call.user
            .in_session(&call.header.session_key, call.input, call.body_len),
    )
    .await
}
