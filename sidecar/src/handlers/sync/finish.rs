//! `POST /sync/finish`: commit the sync; answers the new `mod` as a bare number.

use crate::error::ApiResult;
use crate::handlers::{EmptyInput, InSession, json_answer};
use crate::transport::SyncResponse;

pub async fn finish(call: InSession<EmptyInput>) -> ApiResult<SyncResponse> {
    json_answer(call.user.finish(&call.header.session_key)).await
}
