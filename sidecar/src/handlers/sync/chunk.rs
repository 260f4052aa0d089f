//! `POST /sync/chunk`: the next batch of the server's pending rows.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::normal_sync::chunks::{PendingRows, next_chunk};
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn chunk(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let _: EmptyInput = read_json(body, state.body_limits()).await?;
    let chunk = run_in_session(&state, user.id, &header.session_key, |session| {
        if session.pending.is_none() {
            session.pending = Some(PendingRows::gather(&session.conn, session.client_usn)?);
        }
        let pending = session.pending.as_mut().expect("gathered above");
        let chunk = next_chunk(&session.conn, pending, &mut session.counters)?;
        Ok((chunk, AfterCall::KeepSession))
    })
    .await?;
    SyncResponse::json(&chunk).await
}
