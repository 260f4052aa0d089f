//! `POST /sync/start`: open a normal sync and send the server's deletions.

use crate::error::ApiResult;
use crate::handlers::{Continuing, json_answer};
use crate::normal_sync::wire::StartRequest;
use crate::sync_log::ClientTag;
use crate::transport::SyncResponse;

pub async fn start(client: ClientTag, call: Continuing<StartRequest>) -> ApiResult<SyncResponse> {
    let session_key = call.header.session_key;
    json_answer(call.user.start_sync(session_key, call.input, client)).await
}
