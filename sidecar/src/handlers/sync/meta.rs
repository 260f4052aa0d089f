//! `POST /sync/meta`: the collection's state, from which the client decides what to do.

use axum::body::Body;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::normal_sync::end_session;
use crate::state::AppState;
use crate::storage::now_millis;
use crate::storage::recovery::collection_status_or_recover;
use crate::storage::scheduler::read_features;
use crate::transport::header::{SYNC_VERSION_MAX, SYNC_VERSION_MIN};
use crate::transport::{SyncResponse, read_json};

#[derive(Deserialize)]
struct MetaRequest {
    #[serde(rename = "v", default)]
    sync_version: i64,
    #[serde(rename = "cv", default)]
    client_version: String,
}

#[derive(Serialize)]
struct MetaResponse {
    #[serde(rename = "mod")]
    modified: i64,
    #[serde(rename = "scm")]
    schema: i64,
    usn: i32,
    /// Seconds, unlike every other time here: the client checks its clock against it.
    #[serde(rename = "ts")]
    server_time: i64,
    #[serde(rename = "msg")]
    message: String,
    #[serde(rename = "cont")]
    should_continue: bool,
    #[serde(rename = "hostNum")]
    host_number: u32,
    empty: bool,
    media_usn: i64,
}

pub async fn meta(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: MetaRequest = read_json(body, state.body_limits()).await?;
    if !(i64::from(SYNC_VERSION_MIN)..=i64::from(SYNC_VERSION_MAX)).contains(&request.sync_version)
    {
        return Err(ApiError::ClientTooOld(format!(
            "sync version {} is not supported",
            request.sync_version
        )));
    }
    let mut slot = state.registry.lock(user.id).await;
    // As on the official server, a meta ends any sync in progress: a client only sends it when
    // starting a new operation, and a half-finished sync must never linger.
    end_session(&mut slot, "meta").await?;
    let files = state.data.user(user.id);
    let (status, media_usn, features) = tokio::task::spawn_blocking(move || {
        // A missing, empty or damaged collection or media.db is replaced here: the client
        // stops at a failing meta, so nothing else would ever repair it.
        let status = collection_status_or_recover(&files)?;
        let media_usn = crate::media::last_usn(&files)?;
        let features = read_features(&files)?;
        anyhow::Ok((status, media_usn, features))
    })
    .await??;
    drop(slot);

    let now = now_millis();
    let schema = if status.file_size > state.settings.max_uncompressed_bytes() {
        // Too big for a normal sync's limits: force one-way syncs, as the official server does.
        tracing::warn!(
            user_id = user.id,
            "collection is too large, forcing one-way sync"
        );
        now
    } else {
        status.schema_ms
    };
    tracing::debug!(user_id = user.id, client = %request.client_version, "meta");
    // A legacy client that cannot handle this collection's scheduler is told why.
    let refusal = features.refusal_for(request.sync_version);
    SyncResponse::json(&MetaResponse {
        modified: status.modified_ms,
        schema,
        usn: status.usn,
        server_time: now / 1000,
        message: refusal.unwrap_or_default().to_string(),
        should_continue: refusal.is_none(),
        host_number: 0,
        empty: status.empty,
        media_usn,
    })
    .await
}
