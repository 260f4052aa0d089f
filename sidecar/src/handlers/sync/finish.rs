//! `POST /sync/finish`: commit the sync; answers the new `mod` as a bare number.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::import::ledger::mark_delivered;
use crate::normal_sync::finish::finish as commit;
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn finish(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let _: EmptyInput = read_json(body, state.body_limits()).await?;
    let files = state.data.user(user.id);
    let modified = run_in_session(&state, user.id, &header.session_key, move |session| {
        crate::fault::point("sync:before-commit");
        let modified = commit(&session.conn, session.server_usn)?;
        crate::fault::point("sync:committed");
        session.log_outcome("committed");
        // The client now holds everything imported before this sync started.
        if let Err(err) = mark_delivered(&files) {
            tracing::warn!(error = %format!("{err:#}"), "could not mark imports delivered");
        }
        Ok((modified, AfterCall::EndSession))
    })
    .await?;
    SyncResponse::json(&modified).await
}
