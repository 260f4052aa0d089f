//! `POST /sync/abort`: roll back the active sync. Idempotent, and the session key is not
//! checked, as on the official server (docs/sync-protocol.md#abort).

use crate::error::ApiResult;
use crate::handlers::{EmptyInput, UserCall, json_answer};
use crate::transport::SyncResponse;

pub async fn abort(call: UserCall<EmptyInput>) -> ApiResult<SyncResponse> {
    json_answer(call.user.abort()).await
}
