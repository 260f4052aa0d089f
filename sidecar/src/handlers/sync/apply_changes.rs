//! `POST /sync/applyChanges`: exchange notetypes, decks, deck configs, tags and config.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::changes::{ChangesContext, apply_changes as apply};
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::normal_sync::wire::ApplyChangesRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_changes(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let request: ApplyChangesRequest = read_json(body, state.body_limits()).await?;
    let answer = run_in_session(&state, user.id, &header.session_key, move |session| {
        let context = ChangesContext {
            server_usn: session.server_usn,
            client_usn: session.client_usn,
            client_is_newer: session.client_is_newer,
        };
        let incoming = request.changes;
        let received = incoming.models.len()
            + incoming.decks.0.len()
            + incoming.decks.1.len()
            + incoming.tags.len();
        let answer = apply(&session.conn, &context, incoming)?;
        session.counters.objects_received += received;
        session.counters.objects_sent +=
            answer.models.len() + answer.decks.0.len() + answer.decks.1.len() + answer.tags.len();
        Ok((answer, AfterCall::KeepSession))
    })
    .await?;
    SyncResponse::json(&answer).await
}
