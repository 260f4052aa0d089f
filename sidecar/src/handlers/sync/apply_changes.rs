//! `POST /sync/applyChanges`: exchange notetypes, decks, deck configs, tags and config.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::wire::ApplyChangesRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_changes(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let user = state.users.user(user.id);
    // Cheap first: without the matching sync, the body is never read.
    user.ensure_session(&header.session_key).await?;
    let request: ApplyChangesRequest = read_json(body, state.settings.limits.json_body()).await?;
    let answer = user.apply_changes(&header.session_key, request).await?;
    SyncResponse::json(&answer).await
}
