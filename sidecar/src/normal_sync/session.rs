//! One active normal sync per user, holding an open SQLite transaction across HTTP requests.
//!
//! Keeping the transaction open from `start` to `finish` makes the whole sync atomic: a
//! rollback (abort, error, new start, meta, full sync, idle timeout) restores the state before
//! `start`, and a crash leaves the last committed state because SQLite's journal undoes the
//! uncommitted transaction on the next open.

use std::time::Instant;

use super::chunks::PendingRows;
use super::graves::{apply_graves, ensure_graves_indexes, pending_graves, read_graves};
use super::wire::{Graves, StartRequest};
use super::{OpResult, SyncCounters};
use crate::collection::cached::CachedCollection;
use crate::collection::col_row::col;

pub struct NormalSyncSession {
    pub user_id: i64,
    pub session_key: String,
    /// The user's collection connection with `BEGIN` executed; committed only by `finish`.
    /// The session holds it until the sync ends, then gives it back (see [`Self::rollback`]).
    pub conn: CachedCollection,
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
    /// `start`: on the user's open collection `conn`, begins the transaction the whole sync
    /// runs in, reads the server's USN and pending graves, and applies the graves a legacy
    /// client sends along. Returns the session and the server's graves for the client. On an
    /// error the connection is dropped, which rolls back whatever was begun.
    pub fn open(
        conn: CachedCollection,
        user_id: i64,
        session_key: String,
        request: StartRequest,
        client: crate::sync_log::ClientTag,
    ) -> OpResult<(Self, Graves)> {
        if !conn.checked {
            ensure_graves_indexes(&conn);
        }
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let server_usn = col(&conn).usn()?;
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
        let session = Self {
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
    }

    /// Discards every change of this sync (nothing, after `finish` committed), and gives back
    /// the connection once it is outside any transaction, to be kept for the user's next
    /// request. `None` if the rollback failed: the connection is then closed, which rolls back.
    pub fn rollback(self) -> Option<CachedCollection> {
        if self.conn.is_autocommit() {
            // Already committed by `finish`.
            return Some(self.conn);
        }
        match self.conn.execute_batch("ROLLBACK") {
            Ok(()) if self.conn.is_autocommit() => Some(self.conn),
            Ok(()) => None,
            Err(err) => {
                // Closing the connection rolls back anyway; this only loses the log line's cause.
                tracing::warn!(error = %err, "explicit rollback failed; closing rolls back");
                None
            }
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
