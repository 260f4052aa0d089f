//! One active normal sync per user, holding an open SQLite transaction across HTTP requests.
//!
//! Keeping the transaction open from `start` to `finish` makes the whole sync atomic: a
//! rollback (abort, error, new start, meta, full sync, idle timeout) restores the state before
//! `start`, and a crash leaves the last committed state because SQLite's journal undoes the
//! uncommitted transaction on the next open.

use std::time::{Duration, Instant};

use super::chunks::PendingRows;
use super::{OpResult, SyncCounters, SyncOpError};
use crate::error::{ApiError, ApiResult};
use crate::registry::UserSlot;
use crate::state::AppState;

pub struct NormalSyncSession {
    pub user_id: i64,
    pub session_key: String,
    /// Connection with `BEGIN` executed; committed only by `finish`.
    pub conn: rusqlite::Connection,
    /// The server's `col.usn` at `start` (S). Everything stored during the sync gets it.
    pub server_usn: i32,
    /// The client's `minUsn` (M): server objects with `usn >= M` are sent and count as pending.
    pub client_usn: i32,
    pub client_is_newer: bool,
    /// Server rows still to send, gathered at the first `chunk`.
    pub pending: Option<PendingRows>,
    pub counters: SyncCounters,
    pub started: Instant,
    pub last_activity: Instant,
    /// Who started the sync, for its log line.
    pub client: crate::sync_log::ClientTag,
}

impl NormalSyncSession {
    /// Discards every change of this sync.
    pub fn rollback(self) {
        if self.conn.is_autocommit() {
            // Already committed by `finish`.
            return;
        }
        if let Err(err) = self.conn.execute_batch("ROLLBACK") {
            // Closing the connection rolls back anyway; this only loses the log line's cause.
            tracing::warn!(error = %err, "explicit rollback failed; closing rolls back");
        }
    }

    /// Logs the sync's outcome (its `sync kind=normal` line); called exactly once per
    /// session, when it ends. Only `committed` advanced the collection's USN.
    pub fn log_outcome(&self, outcome: &str) {
        crate::metrics::sync_outcome(outcome, self.started.elapsed().as_secs_f64());
        crate::metrics::session_ended();
        let c = &self.counters;
        let usn_after = if outcome == "committed" {
            self.server_usn + 1
        } else {
            self.server_usn
        };
        let counts = |cards, notes, revlog, graves, objects| {
            crate::sync_log::Counts::default()
                .with("cards", cards)
                .with("notes", notes)
                .with("revlog", revlog)
                .with("graves", graves)
                .with("objects", objects)
        };
        crate::sync_log::SyncLine {
            kind: crate::sync_log::Kind::Normal,
            user_id: self.user_id,
            client: &self.client,
            outcome,
            usn_before: Some(self.server_usn.into()),
            usn_after: Some(usn_after.into()),
            received: counts(
                c.cards_received,
                c.notes_received,
                c.revlog_received,
                c.graves_received,
                c.objects_received,
            ),
            sent: counts(
                c.cards_sent,
                c.notes_sent,
                c.revlog_sent,
                c.graves_sent,
                c.objects_sent,
            ),
            started: self.started,
        }
        .emit();
    }
}

/// Ends the user's active normal sync, if any, rolling it back off the async executor.
pub async fn end_session(slot: &mut UserSlot, reason: &'static str) -> ApiResult<()> {
    if let Some(session) = slot.session.take() {
        session.log_outcome(reason);
        tokio::task::spawn_blocking(move || session.rollback()).await?;
    }
    Ok(())
}

/// Whether a call leaves the session open for the next one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AfterCall {
    KeepSession,
    /// `finish` committed, or a failed sanity check must discard everything.
    EndSession,
}

/// Runs one stateful sync call on the user's open session, on a blocking thread.
///
/// A missing session, or one started under another session key, is a 409 (protocol §1.9).
/// Any error rolls the whole sync back, as the official server does.
/// 409 unless `session_key` names the user's open sync. Handlers call it before reading the
/// body, so a call without a sync costs nothing; `run_in_session` checks again.
pub async fn ensure_session(state: &AppState, user_id: i64, session_key: &str) -> ApiResult<()> {
    let slot = state.registry.lock(user_id).await;
    let open = slot
        .session
        .as_ref()
        .is_some_and(|session| session.session_key == session_key);
    if open {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "no active sync for this session; start a new sync".into(),
        ))
    }
}

pub async fn run_in_session<T, F>(
    state: &AppState,
    user_id: i64,
    session_key: &str,
    operation: F,
) -> ApiResult<T>
where
    T: Send + 'static,
    F: FnOnce(&mut NormalSyncSession) -> OpResult<(T, AfterCall)> + Send + 'static,
{
    let mut slot = state.registry.lock(user_id).await;
    let matches = slot
        .session
        .as_ref()
        .is_some_and(|session| session.session_key == session_key);
    if !matches {
        return Err(ApiError::Conflict(
            "no active sync for this session; start a new sync".into(),
        ));
    }
    let mut session = slot.session.take().expect("checked above");
    let (session, result) = tokio::task::spawn_blocking(move || {
        let result = operation(&mut session);
        (session, result)
    })
    .await?;
    match result {
        Ok((value, AfterCall::KeepSession)) => {
            let mut session = session;
            session.last_activity = Instant::now();
            slot.session = Some(session);
            Ok(value)
        }
        Ok((value, AfterCall::EndSession)) => {
            // Either committed already (finish) or to be discarded (failed sanity check);
            // a rollback after a commit is a harmless no-op.
            tokio::task::spawn_blocking(move || session.rollback()).await?;
            Ok(value)
        }
        Err(err) => {
            let reason = match &err {
                SyncOpError::Invalid(message) => message.clone(),
                SyncOpError::Internal(err) => format!("{err:#}"),
            };
            tracing::info!(user_id, reason = %reason, "sync call failed; rolling back");
            session.log_outcome("failed");
            tokio::task::spawn_blocking(move || session.rollback()).await?;
            if let SyncOpError::Internal(cause) = &err
                && crate::storage::recovery::is_corruption(cause)
            {
                // Damage that meta's checks did not reach: replace the collection now, or
                // every later sync would fail here the same way.
                let files = state.data.user(user_id);
                tokio::task::spawn_blocking(move || {
                    crate::storage::recovery::replace_damaged_collection(&files, &reason)
                })
                .await??;
            }
            Err(err.into())
        }
    }
}

/// Rolls back syncs whose client went silent, so a vanished device cannot keep a user's
/// changes in limbo (design §4).
pub fn spawn_idle_expiry(state: AppState) {
    let timeout = Duration::from_secs(state.settings.sync_idle_timeout_secs.max(1));
    let period = (timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        loop {
            ticker.tick().await;
            for user_id in state.registry.known_users() {
                // A held lock means the user is busy right now, so not idle.
                let Some(mut slot) = state.registry.try_lock(user_id) else {
                    continue;
                };
                let idle = slot
                    .session
                    .as_ref()
                    .is_some_and(|session| session.last_activity.elapsed() > timeout);
                if idle && let Err(err) = end_session(&mut slot, "idle timeout").await {
                    tracing::warn!(user_id, error = %err, "expiring an idle sync failed");
                }
            }
        }
    });
}
