//! `POST /sync/applyChanges`: exchange notetypes, decks, deck configs, tags and config.

use crate::error::ApiResult;
use crate::handlers::{InSession, json_answer};
use crate::normal_sync::wire::ApplyChangesRequest;
use crate::transport::SyncResponse;

pub async fn apply_changes(call: InSession<ApplyChangesRequest>) -> ApiResult<SyncResponse> {
    json_answer(
        call.user
            .in_session(&call.header.session_key, call.input, call.body_len),
    )
    .await
}
