//! `POST /sync/start`: open a normal sync and send the server's deletions.

use std::time::Instant;

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::collection::sqlite::open_collection;
use crate::error::ApiResult;
use crate::normal_sync::graves::{
    apply_graves, ensure_graves_indexes, pending_graves, read_graves,
};
use crate::normal_sync::wire::StartRequest;
use crate::normal_sync::{NormalSyncSession, OpResult, SyncCounters, SyncOpError, end_session};
use crate::state::AppState;
use crate::storage::recovery::{is_damage, replace_damaged_collection};
use crate::storage::status::ensure_collection;
use crate::sync_log::ClientTag;
use crate::transport::{SyncResponse, read_json};

pub async fn start(
    State(state): State<AppState>,
    AuthedUser { user, header }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let request: StartRequest = read_json(body, state.body_limits()).await?;
    let mut slot = state.registry.lock(user.id).await;
    // A new start always replaces the previous sync of this user (protocol §1.9).
    end_session(&mut slot, "replaced by a new start").await?;
    let files = state.data.user(user.id);
    let user_id = user.id;
    let session_key = header.session_key.clone();
    let recovery_files = files.clone();
    let opened = tokio::task::spawn_blocking(move || -> OpResult<_> {
        ensure_collection(&files)?;
        let conn = open_collection(&files.collection()).map_err(anyhow::Error::from)?;
        ensure_graves_indexes(&conn);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let server_usn: i32 =
            conn.query_row("SELECT usn FROM col WHERE id = 1", [], |row| row.get(0))?;
        // The server's pending graves are read before legacy client graves are applied.
        let graves = pending_graves(&conn, request.min_usn)?;
        let mut counters = SyncCounters {
            graves_sent: graves.len(),
            ..Default::default()
        };
        if let Some(legacy) = request.graves.as_ref().filter(|g| !g.is_empty()) {
            let legacy = read_graves(legacy)?;
            apply_graves(&conn, &legacy, server_usn)?;
            counters.graves_received += legacy.len();
        }
        let now = Instant::now();
        let session = NormalSyncSession {
            user_id,
            session_key,
            conn,
            server_usn,
            client_usn: request.min_usn,
            client_is_newer: request.local_is_newer,
            pending: None,
            counters,
            started: now,
            last_activity: now,
            client,
        };
        Ok((session, graves))
    })
    .await?;
    if let Err(SyncOpError::Internal(err)) = &opened
        && is_damage(err)
    {
        // A damaged collection is replaced; the next meta shows the client a new one, and it
        // full-syncs instead of failing here for ever.
        let reason = format!("{err:#}");
        tokio::task::spawn_blocking(move || replace_damaged_collection(&recovery_files, &reason))
            .await??;
    }
    let (session, graves) = opened.map_err(crate::error::ApiError::from)?;
    crate::metrics::session_started();
    slot.session = Some(session);
    drop(slot);
    SyncResponse::json(&graves).await
}
