//! `POST /sync/applyChunk`: merge a batch of the client's rows.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::normal_sync::chunks::{ApplyContext, apply_chunk as apply};
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::session::ensure_session;
use crate::normal_sync::wire::ApplyChunkRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_chunk(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    // Cheap first: without the matching sync, the body is never read.
    ensure_session(&state, user.id, &header.session_key).await?;
    let request: ApplyChunkRequest = read_json(body, state.body_limits()).await?;
    let rows = request.chunk.revlog.len() + request.chunk.cards.len() + request.chunk.notes.len();
    let max_rows = state.settings.limits.max_chunk_rows;
    if rows > max_rows {
        return Err(ApiError::PayloadTooLarge(format!(
            "{rows} rows in one chunk; the limit is {max_rows}"
        )));
    }
    run_in_session(&state, user.id, &header.session_key, move |session| {
        let context = ApplyContext {
            server_usn: session.server_usn,
            client_usn: session.client_usn,
        };
        apply(
            &session.conn,
            &context,
            &request.chunk,
            &mut session.counters,
        )?;
        crate::fault::point("sync:chunk-applied");
        Ok(((), AfterCall::KeepSession))
    })
    .await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
