//! `POST /sync/sanityCheck2`: compare counts; a mismatch discards the whole sync.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::run_in_session;
use crate::normal_sync::sanity::sanity_check as check;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::normal_sync::wire::SanityCheckRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn sanity_check(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let request: SanityCheckRequest = read_json(body, state.body_limits()).await?;
    let answer = run_in_session(&state, user.id, &header.session_key, move |session| {
        let answer = check(&session.conn, &request.client)?;
        if answer.status == "ok" {
            Ok((answer, AfterCall::KeepSession))
        } else {
            tracing::warn!(
                user_id = session.user_id,
                client = ?answer.c,
                server = ?answer.s,
                "sanity check failed; rolling back the sync"
            );
            session.log_outcome("sanity check failed");
            Ok((answer, AfterCall::EndSession))
        }
    })
    .await?;
    SyncResponse::json(&answer).await
}
