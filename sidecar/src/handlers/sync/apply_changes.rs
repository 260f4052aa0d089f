//! `POST /sync/applyChanges`: exchange notetypes, decks, deck configs, tags and config.

use crate::error::ApiResult;
use crate::handlers::InSession;
use crate::normal_sync::wire::ApplyChangesRequest;
use crate::transport::SyncResponse;

pub async fn apply_changes(call: InSession<ApplyChangesRequest>) -> ApiResult<SyncResponse> {
    let answer = call
        .user
        .apply_changes(&call.session_key, call.input)
        .await?;
    SyncResponse::json(&answer).await
}
