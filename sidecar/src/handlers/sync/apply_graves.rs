//! `POST /sync/applyGraves`: the client's deletions, in chunks of up to 250 ids.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::normal_sync::graves::{apply_graves as apply, read_graves};
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::normal_sync::wire::ApplyGravesRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_graves(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let request: ApplyGravesRequest = read_json(body, state.body_limits()).await?;
    let ids = request.chunk.len();
    let max_ids = state.settings.limits.max_grave_ids;
    if ids > max_ids {
        return Err(ApiError::PayloadTooLarge(format!(
            "{ids} ids in one applyGraves; the limit is {max_ids}"
        )));
    }
    run_in_session(&state, user.id, &header.session_key, move |session| {
        let graves = read_graves(&request.chunk)?;
        apply(&session.conn, &graves, session.server_usn)?;
        session.counters.graves_received += graves.len();
        Ok(((), AfterCall::KeepSession))
    })
    .await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
