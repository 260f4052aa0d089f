//! `POST /sync/sanityCheck2`: compare counts; a mismatch discards the whole sync.

use crate::error::ApiResult;
use crate::handlers::InSession;
use crate::normal_sync::wire::SanityCheckRequest;
use crate::transport::SyncResponse;

pub async fn sanity_check(call: InSession<SanityCheckRequest>) -> ApiResult<SyncResponse> {
    let answer = call
        .user
        .sanity_check(&call.session_key, call.input)
        .await?;
    SyncResponse::json(&answer).await
}
