//! `POST /sync/chunk`: the next batch of the server's pending rows.

use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::handlers::InSession;
use crate::transport::SyncResponse;

pub async fn chunk(call: InSession<EmptyInput>) -> ApiResult<SyncResponse> {
    let chunk = call.user.chunk(&call.session_key).await?;
    SyncResponse::json(&chunk).await
}
