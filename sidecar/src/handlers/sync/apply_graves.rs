//! `POST /sync/applyGraves`: the client's deletions, in chunks of up to 250 ids.

use crate::error::ApiResult;
use crate::handlers::InSession;
use crate::normal_sync::wire::ApplyGravesRequest;
use crate::transport::SyncResponse;

pub async fn apply_graves(call: InSession<ApplyGravesRequest>) -> ApiResult<SyncResponse> {
    call.user
        .apply_graves(&call.session_key, call.input)
        .await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
