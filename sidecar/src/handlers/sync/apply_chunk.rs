//! `POST /sync/applyChunk`: merge a batch of the client's rows.

use crate::error::ApiResult;
use crate::handlers::InSession;
use crate::normal_sync::wire::ApplyChunkRequest;
use crate::transport::SyncResponse;

pub async fn apply_chunk(call: InSession<ApplyChunkRequest>) -> ApiResult<SyncResponse> {
    call.user.apply_chunk(&call.session_key, call.input).await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
