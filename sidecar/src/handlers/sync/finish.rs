//! `POST /sync/finish`: commit the sync; answers the new `mod` as a bare number.

use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::handlers::InSession;
use crate::transport::SyncResponse;

pub async fn finish(call: InSession<EmptyInput>) -> ApiResult<SyncResponse> {
    let modified = call.user.finish(&call.session_key).await?;
    SyncResponse::json(&modified).await
}
