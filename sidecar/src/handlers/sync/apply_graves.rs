//! `POST /sync/applyGraves`: the client's deletions, in chunks of up to 250 ids.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::normal_sync::graves::{apply_graves as apply, read_graves};
use crate::normal_sync::run_in_session;
use crate::normal_sync::session::AfterCall;
use crate::normal_sync::wire::ApplyGravesRequest;
use crate::state::AppState;
use crate::transport::{SyncResponse, read_json};

pub async fn apply_graves(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: ApplyGravesRequest = read_json(body, state.body_limits()).await?;
    run_in_session(&state, user.id, &header.session_key, move |session| {
        let graves = read_graves(&request.chunk)?;
        apply(&session.conn, &graves, session.server_usn)?;
        session.counters.graves_received += graves.len();
        Ok(((), AfterCall::KeepSession))
    })
    .await?;
    SyncResponse::json(&serde_json::Value::Null).await
}
