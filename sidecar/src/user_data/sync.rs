//! The collection's operations: `meta`, the normal sync from `start` to `finish` or `abort`,
//! and the full upload and download (docs/sync-protocol.md#normal-sync,
//! docs/sync-protocol.md#full-sync).

use std::time::{Duration, Instant};

use super::cluster::Acquire;
use super::inline::{CallKind, Load};
use super::registry::{UserGuard, UserSlot};
use super::{
    OpenSync, Received, UserData, UserDataError, UserDataResult, Users, blocking, end_now,
    end_session,
};
use crate::clock::now_millis;
use crate::collection::cached::{CachedCollection, IDLE_CLOSE};
use crate::import::ledger::mark_delivered;
use crate::import::{ImportLimits, reapply_pending};
use crate::limits::Limits;
use crate::media::cached::CachedMediaDb;
use crate::normal_sync::changes::{ChangesContext, apply_changes};
use crate::normal_sync::chunks::{ApplyContext, PendingRows, apply_chunk, next_chunk};
use crate::normal_sync::graves::{apply_graves, read_graves};
use crate::normal_sync::sanity::sanity_check;
use crate::normal_sync::wire::{
    ApplyChangesRequest, ApplyChunkRequest, ApplyGravesRequest, Chunk, Graves, SanityCheckRequest,
    SanityCheckResponse, StartRequest, UnchunkedChanges,
};
use crate::normal_sync::{NormalSyncSession, OpResult, SyncOpError};
use crate::storage::UserFiles;
use crate::storage::full_sync::{
    UPLOAD_CORRUPT, UPLOAD_OK, UPLOAD_TOO_LARGE, UploadOutcome, install_upload,
    snapshot_for_download,
};
use crate::storage::recovery::{
    collection_status_or_recover_on, is_corruption, is_damage, replace_damaged_collection,
};
use crate::storage::scheduler::SchedulerFeatures;
use crate::storage::status::{CollectionStatus, ensure_collection, read_status_from};
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine, collection_usn};

/// What `meta` tells the client about the user's collection.
pub struct CollectionState {
    pub modified_ms: i64,
    /// `col.scm`, or now when the collection is too large for a normal sync.
    pub schema_ms: i64,
    pub usn: i32,
    pub empty: bool,
    pub media_usn: i64,
    /// The server's clock when the state was read, ms.
    pub now_ms: i64,
    /// What a legacy client is checked against.
    pub features: SchedulerFeatures,
}

/// How a stateful call left the sync: still open (`Ok`, the session), or ended (`Err`, with
/// its connection if it may be kept).
type LeftOpen = Result<NormalSyncSession, Option<CachedCollection>>;

/// Whether a call leaves the session open for the next one.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum AfterCall {
    KeepSession,
    /// `finish` committed, or a failed sanity check must discard everything.
    EndSession,
}

impl UserData {
    /// The collection's state, from which the client decides what to do. As on the official
    /// server, it ends any sync in progress: a client only sends it when starting a new
    /// operation, and a half-finished sync must never linger.
    pub async fn meta(&self) -> UserDataResult<CollectionState> {
        let mut slot = self.registry.lock(self.user_id).await;
        let read = match meta_on_worker(&mut slot, &self.files) {
            Some(read) => Ok(read),
            None => self.meta_on_pool(&mut slot).await?,
        };
        drop(slot);
        let (status, media_usn) = read?;
        let now_ms = now_millis();
        let schema_ms = if status.file_size > self.settings.max_uncompressed_bytes() {
            // Too big for a normal sync's limits: force one-way syncs, as the official server
            // does.
            tracing::warn!(
                user_id = self.user_id,
                "collection is too large, forcing one-way sync"
            );
            now_ms
        } else {
            status.schema_ms
        };
        Ok(CollectionState {
            modified_ms: status.modified_ms,
            schema_ms,
            usn: status.usn,
            empty: status.empty,
            media_usn,
            now_ms,
            features: status.features,
        })
    }

    /// `meta`'s read on the pool: what [`meta_on_worker`] leaves there, and what it cannot do.
    async fn meta_on_pool(
        &self,
        slot: &mut UserGuard,
    ) -> UserDataResult<anyhow::Result<(CollectionStatus, i64)>> {
        let session = slot.session.take();
        let kept = slot.cached_collection();
        let kept_media = slot.cached_media();
        let files = self.files.clone();
        // One blocking hop: the open sync's rollback, then the status on the kept connection
        // (the sync's own connection, once rolled back) and the media USN on the kept
        // `media.db` connection; both go back to the slot.
        let (read, conn, media, took) = blocking(move || {
            let started = Instant::now();
            let kept = session
                .and_then(|session| end_now(session, "meta"))
                .or(kept);
            // A missing, empty or damaged collection or media.db is replaced here: the
            // client stops at a failing meta, so nothing else would ever repair it.
            let (status, conn) = match collection_status_or_recover_on(&files, kept) {
                Ok(read) => read,
                Err(err) => {
                    return Ok::<_, UserDataError>((Err(err), None, None, started.elapsed()));
                }
            };
            let (media_usn, media) = super::media::media_usn_on(kept_media, &files);
            let read = media_usn.map(|media_usn| (status, media_usn));
            Ok((read, conn.put_away(), media, started.elapsed()))
        })
        .await?;
        slot.call_costs.record(CallKind::Meta, took);
        if let Some(conn) = conn {
            slot.keep_collection(conn);
        }
        if let Some(media) = media {
            slot.keep_media(media);
        }
        Ok(read)
    }

    /// Opens a normal sync under `session_key` and returns the server's deletions. A new
    /// start always replaces the previous sync of this user (docs/sync-protocol.md#sessions).
    pub async fn start_sync(
        &self,
        session_key: String,
        request: StartRequest,
        client: ClientTag,
    ) -> UserDataResult<Graves> {
        let mut slot = self.registry.lock(self.user_id).await;
        // Cluster mode: a sync open on another node is ended there first.
        slot.hold_cluster(Acquire::Supersede).await?;
        let user_id = self.user_id;
        let load = Load {
            items: request.graves.as_ref().map_or(0, |graves| graves.len()),
            bytes: 0,
        };
        let on_worker =
            slot.session.is_none() && slot.call_costs.runs_inline(CallKind::Start, load);
        let kept = slot.cached_collection();
        let opened = match kept {
            Some(conn) if on_worker && conn.ready(&self.files.collection()) => {
                // On the worker (`user_data::inline`): the kept connection, checked, with no
                // sync to end; `BEGIN IMMEDIATE` waits for nobody, since only this user's
                // calls, one at a time, write the file.
                let started = Instant::now();
                let opened = NormalSyncSession::open(conn, user_id, session_key, request, client);
                slot.call_costs.record(CallKind::Start, started.elapsed());
                if let Err(SyncOpError::Internal(err)) = &opened
                    && is_damage(err)
                {
                    let (files, reason) = (self.files.clone(), format!("{err:#}"));
                    blocking(move || replace_damaged_collection(&files, &reason)).await?;
                }
                opened
            }
            kept => {
                self.start_on_pool(&mut slot, kept, session_key, request, client)
                    .await?
            }
        };
        let (session, graves) = opened?;
        crate::metrics::session_started();
        // The session keeps the cluster lock (if any) in the slot until it ends.
        slot.session = Some(session);
        Ok(graves)
    }

    /// `start` on the pool: the previous sync's rollback, and the new transaction on the
    /// user's kept connection (or one opened now), in one blocking hop; timed for
    /// `user_data::inline`.
    async fn start_on_pool(
        &self,
        slot: &mut UserGuard,
        kept: Option<CachedCollection>,
        session_key: String,
        request: StartRequest,
        client: ClientTag,
    ) -> UserDataResult<OpResult<(NormalSyncSession, Graves)>> {
        let previous = slot.session.take();
        let files = self.files.clone();
        let user_id = self.user_id;
        let (opened, took) = blocking(move || {
            let started = Instant::now();
            let kept = previous
                .and_then(|session| end_now(session, "replaced by a new start"))
                .or(kept);
            let opened = ensure_collection(&files)
                .and_then(|()| {
                    CachedCollection::reuse_or_open(kept, &files.collection())
                        .map_err(anyhow::Error::from)
                })
                .map_err(SyncOpError::from)
                .and_then(|conn| {
                    NormalSyncSession::open(conn, user_id, session_key, request, client)
                });
            if let Err(SyncOpError::Internal(err)) = &opened
                && is_damage(err)
            {
                // A damaged collection is replaced (its connection was closed with the
                // error); the next meta shows the client a new one, and it full-syncs
                // instead of failing here for ever.
                replace_damaged_collection(&files, &format!("{err:#}"))?;
            }
            anyhow::Ok((opened, started.elapsed()))
        })
        .await?;
        slot.call_costs.record(CallKind::Start, took);
        Ok(opened)
    }

    /// `NoSession` unless `session_key` names the user's open sync. Handlers call it before
    /// reading the body, so a call without a sync costs nothing; every call checks again.
    pub async fn ensure_session(&self, session_key: &str) -> UserDataResult<()> {
        let slot = self.registry.lock(self.user_id).await;
        let open = slot
            .session
            .as_ref()
            .is_some_and(|session| session.session_key == session_key);
        if open {
            Ok(())
        } else {
            Err(UserDataError::NoSession)
        }
    }

    /// One stateful call of the normal sync (`applyGraves` to `sanityCheck2`) on the open
    /// session `session_key`, once its request is within the limits.
    /// `body_len` is the length of the request's JSON text, after decompression.
    pub async fn in_session<C: SessionCall>(
        &self,
        session_key: &str,
        call: C,
        body_len: usize,
    ) -> UserDataResult<C::Answer> {
        call.check_limits(&self.settings.limits)?;
        let load = Load {
            items: call.items(),
            bytes: body_len,
        };
        let inline = Some((C::KIND, load));
        self.run_in_session(session_key, inline, move |session| call.run(session))
            .await
    }

    /// `finish`: commits the sync; returns the new `mod`, ms.
    pub async fn finish(&self, session_key: &str) -> UserDataResult<i64> {
        let files = self.files.clone();
        // Never on the worker: it commits, and waits for the fsync.
        self.run_in_session(session_key, None, move |session| {
            crate::fault::point("sync:before-commit");
            let modified = crate::normal_sync::finish::finish(&session.conn, session.server_usn)?;
            crate::fault::point("sync:committed");
            session.log_outcome("committed");
            // The client now holds everything imported before this sync started.
            if let Err(err) = mark_delivered(&files) {
                tracing::warn!(error = %format!("{err:#}"), "could not mark imports delivered");
            }
            Ok((modified, AfterCall::EndSession))
        })
        .await
    }

    /// `abort`: rolls back the open sync, if any, whatever its session key.
    pub async fn abort(&self) -> UserDataResult<()> {
        let mut slot = self.registry.lock(self.user_id).await;
        slot.hold_cluster(Acquire::Supersede).await?;
        end_session(&mut slot, "aborted by client").await?;
        slot.unlock().await;
        Ok(())
    }

    /// Runs one stateful sync call on the user's open session: on a blocking thread, or on
    /// the worker when `inline` names a small call that [`CallCosts`] lets run there
    /// (`user_data::inline`).
    ///
    /// A missing session, or one started under another session key, is `NoSession`
    /// (docs/sync-protocol.md#sessions). Any error rolls the whole sync back, as the official
    /// server does.
    async fn run_in_session<T, F>(
        &self,
        session_key: &str,
        inline: Option<(CallKind, Load)>,
        operation: F,
    ) -> UserDataResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut NormalSyncSession) -> OpResult<(T, AfterCall)> + Send + 'static,
    {
        let user_id = self.user_id;
        let mut slot = self.registry.lock(user_id).await;
        let matches = slot
            .session
            .as_ref()
            .is_some_and(|session| session.session_key == session_key);
        if !matches {
            return Err(UserDataError::NoSession);
        }
        if !slot.still_holds_cluster().await {
            // Cut off from PostgreSQL: another node may own the user by now.
            tracing::warn!(
                user_id,
                "lost the user's cluster lock; rolling back the sync"
            );
            end_session(&mut slot, "lost the cluster lock").await?;
            slot.unlock().await;
            return Err(UserDataError::NoSession);
        }
        let mut session = slot.session.take().expect("checked above");
        let files = self.files.clone();
        let on_worker = inline.filter(|&(kind, load)| slot.call_costs.runs_inline(kind, load));
        let (left, result) = if let Some((kind, _)) = on_worker {
            let started = Instant::now();
            let result = operation(&mut session);
            slot.call_costs.record(kind, started.elapsed());
            match result {
                Ok((value, AfterCall::KeepSession)) => (Ok(session), Ok(value)),
                // Ending the sync goes to the pool, as everything but the call's own work.
                ended => blocking(move || settle(session, ended, &files, user_id)).await?,
            }
        } else {
            // One blocking hop: the call, and the end of the sync when it ends it.
            let (settled, took) = blocking(move || {
                let started = Instant::now();
                let result = operation(&mut session);
                let took = started.elapsed();
                anyhow::Ok((settle(session, result, &files, user_id)?, took))
            })
            .await?;
            if let Some((kind, _)) = inline {
                slot.call_costs.record(kind, took);
            }
            settled
        };
        match left {
            Ok(mut session) => {
                session.last_activity = Instant::now();
                slot.session = Some(session);
            }
            Err(Some(conn)) => slot.keep_collection(conn),
            Err(None) => {}
        }
        // Releases the cluster lock too when the sync ended (an open one keeps it).
        slot.unlock().await;
        result.map_err(Into::into)
    }

    /// A full upload: installs the received collection in place of the user's, and merges
    /// again the imports the uploading device may never have received
    /// (docs/design.md#server-side-import). Returns the sentence the client shows.
    pub async fn full_upload(
        &self,
        received: Received,
        client: &ClientTag,
        started: Instant,
    ) -> UserDataResult<&'static str> {
        let line = |outcome: &str, before, after, bytes: u64| {
            SyncLine {
                kind: Kind::FullUpload,
                user_id: self.user_id,
                client,
                outcome,
                usn_before: before,
                usn_after: after,
                received: Counts::default().with("collection_bytes", bytes),
                sent: Counts::default(),
                started,
            }
            .emit()
        };
        let spooled = match received {
            Received::File(file) => file,
            Received::TooLarge => {
                tracing::info!(
                    user_id = self.user_id,
                    "upload refused: over the size limit"
                );
                line("refused_too_large", None, None, 0);
                return Ok(UPLOAD_TOO_LARGE);
            }
        };
        crate::fault::point("upload:spooled");
        let limits = ImportLimits {
            max_collection_bytes: self.settings.max_uncompressed_bytes(),
        };
        let received = spooled.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        let (outcome, usn_before, usn_after) = self
            .exclusive(OpenSync::End("upload"), move |files| {
                let usn_before = collection_usn(&files.collection());
                let outcome = install_upload(files, spooled)?;
                if outcome == UploadOutcome::Installed {
                    // The uploading device may never have received some imports: merge them
                    // again so the upload does not erase them (docs/design.md#server-side-import).
                    reapply_pending(files, limits)?;
                }
                let usn_after = collection_usn(&files.collection());
                crate::fault::point("upload:installed");
                anyhow::Ok((outcome, usn_before, usn_after))
            })
            .await?;
        Ok(match outcome {
            UploadOutcome::Installed => {
                tracing::info!(user_id = self.user_id, "full upload installed");
                line("installed", usn_before, usn_after, received);
                UPLOAD_OK
            }
            UploadOutcome::Corrupt(reason) => {
                tracing::info!(
                    user_id = self.user_id,
                    reason = %reason,
                    "full upload refused as corrupt"
                );
                line("refused_corrupt", usn_before, usn_after, received);
                UPLOAD_CORRUPT
            }
        })
    }

    /// A full download: a snapshot of the whole collection file, which from now on counts as
    /// holding every import so far.
    pub async fn full_download(
        &self,
        client: &ClientTag,
        started: Instant,
    ) -> UserDataResult<tempfile::NamedTempFile> {
        let (snapshot, usn_before, usn_after) = self
            .exclusive(OpenSync::End("download"), |files| {
                ensure_collection(files)?;
                let usn_before = collection_usn(&files.collection());
                let snapshot = snapshot_for_download(files)?;
                let usn_after = collection_usn(snapshot.path());
                // The file sent holds every import so far.
                mark_delivered(files)?;
                anyhow::Ok((snapshot, usn_before, usn_after))
            })
            .await?;
        tracing::info!(user_id = self.user_id, "full download");
        // The uncompressed size of the collection file; the body on the wire is zstd.
        let size = snapshot.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        SyncLine {
            kind: Kind::FullDownload,
            user_id: self.user_id,
            client,
            outcome: "sent",
            usn_before,
            usn_after,
            received: Counts::default(),
            sent: Counts::default().with("collection_bytes", size),
            started,
        }
        .emit();
        Ok(snapshot)
    }
}

impl Users {
    /// Rolls back syncs whose client went silent for `timeout`, so a vanished device cannot
    /// keep a user's changes in limbo (docs/design.md#schema-11-on-the-server), and closes
    /// collection and `media.db` connections kept unused for `collection::cached::IDLE_CLOSE`.
    pub fn spawn_idle_expiry(&self, timeout: Duration) {
        let timeout = timeout.max(Duration::from_secs(1));
        let period = (timeout / 4).clamp(Duration::from_secs(1), Duration::from_secs(30));
        let registry = self.registry.clone();
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(period);
            loop {
                ticker.tick().await;
                for user_id in registry.known_users() {
                    // A held lock means the user is busy right now, so not idle.
                    if let Some(slot) = registry.try_lock(user_id) {
                        tidy_user(slot, user_id, timeout, IDLE_CLOSE).await;
                    }
                }
            }
        });
    }
}

/// `meta`'s read on the worker (`user_data::inline`), when it would open, roll back or repair
/// nothing: no sync is open, the kept connections still serve their files (or the user has no
/// `media.db`), and the user's last `meta` took at most the budget. None when it cannot, or when
/// the read fails: the connections are back in the slot and the pool reads, and repairs.
fn meta_on_worker(slot: &mut UserSlot, files: &UserFiles) -> Option<(CollectionStatus, i64)> {
    if slot.session.is_some() || !slot.call_costs.runs_inline(CallKind::Meta, Load::NONE) {
        return None;
    }
    let started = Instant::now();
    let mut conn = slot.cached_collection()?;
    let media = slot.cached_media();
    let read = read_meta_on_kept(files, &mut conn, media.as_ref());
    slot.call_costs.record(CallKind::Meta, started.elapsed());
    if read.is_some() {
        // Both were used: put away, as on the pool, to note the time for the idle
        // housekeeping. Both were found unchanged just before, and only read.
        if let Some(conn) = conn.put_away_unchanged() {
            slot.keep_collection(conn);
        }
        if let Some(media) = media.and_then(CachedMediaDb::put_away_unchanged) {
            slot.keep_media(media);
        }
    } else {
        // Back as they were, unused: a stale one must stay stale for the pool to see it.
        slot.keep_collection(conn);
        if let Some(media) = media {
            slot.keep_media(media);
        }
    }
    read
}

/// The collection's status and the media USN on connections that need no opening, converting
/// or repair; None otherwise, or when a read fails.
fn read_meta_on_kept(
    files: &UserFiles,
    conn: &mut CachedCollection,
    media: Option<&CachedMediaDb>,
) -> Option<(CollectionStatus, i64)> {
    if !conn.ready(&files.collection()) {
        return None;
    }
    let media_usn = match media {
        Some(media) if media.ready(files) => media.totals().ok()?.last_usn,
        Some(_) => return None,
        // A store that exists but is not kept is opened on the pool.
        None if files.media_db().exists() => return None,
        None => 0,
    };
    // Ready: checked once already, and its file's size was read by that check just now.
    let status = read_status_from(conn, conn.file_size()).ok()?;
    Some((status, media_usn))
}

/// One user's housekeeping, under the user's lock: rolls back a sync idle for longer than
/// `sync_timeout`, and closes the kept collection and `media.db` connections once unused for
/// longer than `close_after`, so that handles and memory go back with the users who stopped
/// syncing.
async fn tidy_user(
    mut slot: UserGuard,
    user_id: i64,
    sync_timeout: Duration,
    close_after: Duration,
) {
    let idle = slot
        .session
        .as_ref()
        .is_some_and(|session| session.last_activity.elapsed() > sync_timeout);
    let reason = if idle {
        Some("idle timeout")
    } else if slot.session.is_some() && !slot.still_holds_cluster().await {
        // Cluster mode, cut off from PostgreSQL: another node may take the user now, so the
        // file is let go without waiting for the client.
        Some("lost the cluster lock")
    } else {
        None
    };
    if let Some(reason) = reason
        && let Err(err) = end_session(&mut slot, reason).await
    {
        tracing::warn!(user_id, error = %err, "expiring a sync failed");
    }
    let closing = slot
        .collection_idle_for()
        .is_some_and(|idle| idle > close_after)
        .then(|| slot.cached_collection())
        .flatten();
    let closing_media = slot
        .media_idle_for()
        .is_some_and(|idle| idle > close_after)
        .then(|| slot.cached_media())
        .flatten();
    if closing.is_some() {
        // The next sync works on a connection opened afresh: its calls are timed again.
        slot.call_costs.forget();
    }
    slot.unlock().await;
    if closing.is_some() || closing_media.is_some() {
        let _ = tokio::task::spawn_blocking(move || drop((closing, closing_media))).await;
    }
}

/// After a call of an open sync, on a blocking thread: keeps the session open, or ends it, by
/// commit already made (`finish`) or by rollback, and repairs a collection the call found
/// damaged.
fn settle<T>(
    session: NormalSyncSession,
    result: OpResult<(T, AfterCall)>,
    files: &UserFiles,
    user_id: i64,
) -> anyhow::Result<(LeftOpen, OpResult<T>)> {
    let ended = match result {
        Ok((value, AfterCall::KeepSession)) => return Ok((Ok(session), Ok(value))),
        // Either committed already (finish) or to be discarded (failed sanity check); a
        // rollback after a commit is a harmless no-op.
        Ok((value, AfterCall::EndSession)) => {
            let conn = session.rollback().and_then(CachedCollection::put_away);
            return Ok((Err(conn), Ok(value)));
        }
        Err(err) => err,
    };
    let reason = match &ended {
        SyncOpError::Invalid(message) => message.clone(),
        SyncOpError::Internal(err) => format!("{err:#}"),
    };
    tracing::info!(user_id, reason = %reason, "sync call failed; rolling back");
    session.log_outcome("failed");
    let conn = session.rollback().and_then(CachedCollection::put_away);
    if let SyncOpError::Internal(cause) = &ended
        && is_corruption(cause)
    {
        // Damage that meta's checks did not reach: replace the collection now, or every later
        // sync would fail here the same way. Its connection goes first.
        drop(conn);
        replace_damaged_collection(files, &reason)?;
        return Ok((Err(None), Err(ended)));
    }
    Ok((Err(conn), Err(ended)))
}

/// A stateful call of the normal sync, by its request: what it does on the open session.
pub trait SessionCall: Send + 'static {
    type Answer: Send + 'static;

    /// Which call it is, for where it runs (`user_data::inline`).
    const KIND: CallKind;

    /// The rows, ids or objects its request carries.
    fn items(&self) -> usize {
        0
    }

    /// Refuses a request past the configured limits, before the session is looked at.
    fn check_limits(&self, _limits: &Limits) -> UserDataResult<()> {
        Ok(())
    }

    /// Runs on a blocking thread, or on the worker when it is small (`user_data::inline`);
    /// says whether the session stays open.
    fn run(self, session: &mut NormalSyncSession) -> OpResult<(Self::Answer, AfterCall)>;
}

/// `TooLarge` when `count` of `what` passes `limit`.
fn at_most(count: usize, limit: usize, what: &str) -> UserDataResult<()> {
    if count > limit {
        return Err(UserDataError::TooLarge(format!(
            "{count} {what}; the limit is {limit}"
        )));
    }
    Ok(())
}

/// `applyGraves`: the client's deletions.
impl SessionCall for ApplyGravesRequest {
    type Answer = ();
    const KIND: CallKind = CallKind::ApplyGraves;

    fn items(&self) -> usize {
        self.chunk.len()
    }

    fn check_limits(&self, limits: &Limits) -> UserDataResult<()> {
        at_most(self.items(), limits.max_grave_ids, "ids in one applyGraves")
    }

    fn run(self, session: &mut NormalSyncSession) -> OpResult<((), AfterCall)> {
        let graves = read_graves(&self.chunk)?;
        apply_graves(&session.conn, &graves, session.server_usn)?;
        session.counters.graves_received += graves.len();
        Ok(((), AfterCall::KeepSession))
    }
}

/// `applyChanges`: notetypes, decks, deck configs, tags and config, both ways.
impl SessionCall for ApplyChangesRequest {
    type Answer = UnchunkedChanges;
    const KIND: CallKind = CallKind::ApplyChanges;

    fn items(&self) -> usize {
        let changes = &self.changes;
        let conf = changes.conf.as_ref().map_or(0, |conf| conf.len());
        changes.models.len()
            + changes.decks.0.len()
            + changes.decks.1.len()
            + changes.tags.len()
            + conf
    }

    fn run(self, session: &mut NormalSyncSession) -> OpResult<(UnchunkedChanges, AfterCall)> {
        let context = ChangesContext {
            server_usn: session.server_usn,
            client_usn: session.client_usn,
            client_is_newer: session.client_is_newer,
        };
        let incoming = self.changes;
        let received = incoming.models.len()
            + incoming.decks.0.len()
            + incoming.decks.1.len()
            + incoming.tags.len();
        let (conn, memo) = session.conn.with_column_memos();
        let answer = apply_changes(conn, memo, &context, incoming)?;
        session.counters.objects_received += received;
        session.counters.objects_sent +=
            answer.models.len() + answer.decks.0.len() + answer.decks.1.len() + answer.tags.len();
        Ok((answer, AfterCall::KeepSession))
    }
}

/// `chunk`: the next batch of the server's pending rows.
pub struct NextChunk;

impl SessionCall for NextChunk {
    type Answer = Chunk;
    const KIND: CallKind = CallKind::Chunk;

    fn run(self, session: &mut NormalSyncSession) -> OpResult<(Chunk, AfterCall)> {
        if session.pending.is_none() {
            session.pending = Some(PendingRows::gather(&session.conn, session.client_usn)?);
        }
        let pending = session.pending.as_mut().expect("gathered above");
        let chunk = next_chunk(&session.conn, pending, &mut session.counters)?;
        Ok((chunk, AfterCall::KeepSession))
    }
}

/// `applyChunk`: merges a batch of the client's rows.
impl SessionCall for ApplyChunkRequest {
    type Answer = ();
    const KIND: CallKind = CallKind::ApplyChunk;

    fn items(&self) -> usize {
        self.chunk.revlog.len() + self.chunk.cards.len() + self.chunk.notes.len()
    }

    fn check_limits(&self, limits: &Limits) -> UserDataResult<()> {
        at_most(self.items(), limits.max_chunk_rows, "rows in one chunk")
    }

    fn run(self, session: &mut NormalSyncSession) -> OpResult<((), AfterCall)> {
        let context = ApplyContext {
            server_usn: session.server_usn,
            client_usn: session.client_usn,
        };
        apply_chunk(&session.conn, &context, &self.chunk, &mut session.counters)?;
        crate::fault::point("sync:chunk-applied");
        Ok(((), AfterCall::KeepSession))
    }
}

/// `sanityCheck2`: compares counts; a mismatch discards the whole sync.
impl SessionCall for SanityCheckRequest {
    type Answer = SanityCheckResponse;
    const KIND: CallKind = CallKind::SanityCheck;

    fn run(self, session: &mut NormalSyncSession) -> OpResult<(SanityCheckResponse, AfterCall)> {
        let (conn, memo) = session.conn.with_column_memos();
        let answer = sanity_check(conn, memo, &self.client)?;
        if answer.status == "ok" {
            return Ok((answer, AfterCall::KeepSession));
        }
        tracing::warn!(
            user_id = session.user_id,
            client = ?answer.c,
            server = ?answer.s,
            "sanity check failed; rolling back the sync"
        );
        session.log_outcome("sanity check failed");
        Ok((answer, AfterCall::EndSession))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::DataDir;
    use crate::storage::status::ensure_collection;
    use crate::user_data::registry::Registry;

    /// A call that answers the thread it ran on, after taking as long as told.
    struct RanOn {
        took: Duration,
        items: usize,
        fails: bool,
    }

    impl SessionCall for RanOn {
        type Answer = std::thread::ThreadId;
        const KIND: CallKind = CallKind::Chunk;

        fn items(&self) -> usize {
            self.items
        }

        fn run(self, _: &mut NormalSyncSession) -> OpResult<(Self::Answer, AfterCall)> {
            std::thread::sleep(self.took);
            if self.fails {
                return Err(SyncOpError::Invalid("told to fail".into()));
            }
            Ok((std::thread::current().id(), AfterCall::KeepSession))
        }
    }

    const FAST: RanOn = RanOn {
        took: Duration::ZERO,
        items: 0,
        fails: false,
    };

    async fn started(root: &std::path::Path) -> UserData {
        let settings =
            crate::config::Settings::from_args([format!("--data-dir={}", root.display())]);
        let users = Users::new(
            DataDir::new(root).unwrap(),
            std::sync::Arc::new(settings),
            None,
        );
        let user = users.user(1);
        start(&user, "key").await;
        user
    }

    async fn start(user: &UserData, session_key: &str) {
        let request = StartRequest {
            min_usn: 0,
            local_is_newer: false,
            graves: None,
        };
        user.start_sync(session_key.into(), request, ClientTag::default())
            .await
            .unwrap();
    }

    /// A user with the sync "key" open whose small calls now run on the worker: the first
    /// was timed on the pool, the second ran here. Also gives this (the worker's) thread.
    async fn warmed_up(root: &std::path::Path) -> (UserData, std::thread::ThreadId) {
        let user = started(root).await;
        let here = std::thread::current().id();
        user.in_session("key", FAST, 100).await.unwrap();
        assert_eq!(user.in_session("key", FAST, 100).await.unwrap(), here);
        (user, here)
    }

    /// The test runtime has one thread; the blocking pool's are others.
    #[tokio::test]
    async fn a_small_call_runs_on_the_worker_once_its_kind_was_fast() {
        let root = tempfile::tempdir().unwrap();
        let user = started(root.path()).await;
        let here = std::thread::current().id();
        let ran_on = |call: RanOn| user.in_session("key", call, 100);
        assert_ne!(
            ran_on(FAST).await.unwrap(),
            here,
            "the first one is timed on the pool"
        );
        assert_eq!(ran_on(FAST).await.unwrap(), here);
        let large = RanOn {
            items: crate::user_data::inline::MAX_ITEMS + 1,
            ..FAST
        };
        assert_ne!(ran_on(large).await.unwrap(), here);
        let large_body = user.in_session("key", FAST, crate::user_data::inline::MAX_BODY + 1);
        assert_ne!(large_body.await.unwrap(), here);
        // A slow one on the worker sends the next one to the pool, where a fast one brings
        // the following one back.
        let slow = RanOn {
            took: crate::user_data::inline::BUDGET * 4,
            ..FAST
        };
        assert_eq!(ran_on(slow).await.unwrap(), here);
        assert_ne!(ran_on(FAST).await.unwrap(), here);
        assert_eq!(ran_on(FAST).await.unwrap(), here);
        // Whatever closes the user's files forgets the times.
        user.registry.lock(1).await.close_files();
        assert_ne!(ran_on(FAST).await.unwrap(), here);
    }

    /// A reset replaces the files the times were taken on: the next sync's first call of
    /// each kind is timed on the pool again.
    #[tokio::test]
    async fn a_reset_forgets_the_times() {
        let root = tempfile::tempdir().unwrap();
        let (user, here) = warmed_up(root.path()).await;
        user.reset(false, crate::user_data::admin::MediaOnReset::Delete)
            .await
            .unwrap();
        start(&user, "again").await;
        assert_ne!(user.in_session("again", FAST, 100).await.unwrap(), here);
    }

    /// The idle housekeeping that closes the kept collection forgets the times too.
    #[tokio::test]
    async fn closing_an_idle_collection_forgets_the_times() {
        let root = tempfile::tempdir().unwrap();
        let files = DataDir::new(root.path().to_path_buf()).unwrap().user(1);
        ensure_collection(&files).unwrap();
        let registry = Registry::default();
        let load = Load {
            items: 0,
            bytes: 100,
        };
        let mut slot = registry.lock(1).await;
        slot.call_costs.record(CallKind::Chunk, Duration::ZERO);
        let conn = CachedCollection::open(&files.collection())
            .unwrap()
            .put_away()
            .expect("within the cap");
        slot.keep_collection(conn);
        tidy_user(slot, 1, Duration::from_secs(300), IDLE_CLOSE).await;
        assert!(
            registry
                .lock(1)
                .await
                .call_costs
                .runs_inline(CallKind::Chunk, load)
        );
        tidy_user(
            registry.lock(1).await,
            1,
            Duration::from_secs(300),
            Duration::ZERO,
        )
        .await;
        let slot = registry.lock(1).await;
        assert!(slot.collection_idle_for().is_none());
        assert!(!slot.call_costs.runs_inline(CallKind::Chunk, load));
    }

    /// A call that fails on the worker still ends the sync: rolled back, its connection kept.
    #[tokio::test]
    async fn a_call_failing_on_the_worker_ends_the_sync() {
        let root = tempfile::tempdir().unwrap();
        let (user, _) = warmed_up(root.path()).await;
        let failing = RanOn {
            fails: true,
            ..FAST
        };
        assert!(matches!(
            user.in_session("key", failing, 100).await,
            Err(UserDataError::Sync(SyncOpError::Invalid(_)))
        ));
        assert!(matches!(
            user.in_session("key", FAST, 100).await,
            Err(UserDataError::NoSession)
        ));
        let mut slot = user.registry.lock(1).await;
        assert!(slot.session.is_none());
        assert!(
            slot.cached_collection().is_some(),
            "the rolled-back connection is kept"
        );
    }

    /// How many hops to the pool `call` made (the test runtime has one thread).
    async fn hops<T>(call: impl std::future::Future<Output = T>) -> (T, usize) {
        let before = crate::user_data::POOL_HOPS.with(std::cell::Cell::get);
        let answer = call.await;
        (
            answer,
            crate::user_data::POOL_HOPS.with(std::cell::Cell::get) - before,
        )
    }

    async fn finish_and_meta(user: &UserData, session_key: &str) -> (CollectionState, usize) {
        user.finish(session_key).await.unwrap();
        let (state, hops) = hops(user.meta()).await;
        (state.unwrap(), hops)
    }

    /// `meta` and `start` run on the worker once their kind was fast, on the kept connection,
    /// and read what the last sync wrote; an open sync, or files closed, send them back to the
    /// pool.
    #[tokio::test]
    async fn meta_and_start_run_on_the_worker_between_syncs() {
        let root = tempfile::tempdir().unwrap();
        let user = started(root.path()).await;
        // The first meta is timed on the pool, and ends the open sync there.
        let (first, pool_hops) = hops(user.meta()).await;
        let first = first.unwrap();
        assert_eq!(pool_hops, 1);
        start(&user, "a").await;
        let (second, pool_hops) = finish_and_meta(&user, "a").await;
        assert_eq!(pool_hops, 0, "on the worker");
        assert!(second.modified_ms >= first.modified_ms);
        assert_eq!(second.usn, first.usn + 1, "the commit is read");
        // `start` was timed on the pool by the first sync; now it runs on the worker.
        let ((), pool_hops) = hops(start(&user, "b")).await;
        assert_eq!(pool_hops, 0, "on the worker");
        let (third, _) = finish_and_meta(&user, "b").await;
        assert_eq!(third.usn, second.usn + 1);
        // With a sync open, meta ends it on the pool.
        start(&user, "c").await;
        let (_, pool_hops) = hops(user.meta()).await;
        assert_eq!(pool_hops, 1);
        // A start that replaces an open sync ends it on the pool too.
        start(&user, "d").await;
        let ((), pool_hops) = hops(start(&user, "e")).await;
        assert_eq!(pool_hops, 1);
        user.finish("e").await.unwrap();
        // Whatever closes the files forgets the times: both are timed on the pool again.
        user.registry.lock(1).await.close_files();
        let (_, pool_hops) = hops(user.meta()).await;
        assert_eq!(pool_hops, 1);
    }

    /// A kept connection whose file was replaced behind it (as a full upload or a restore
    /// would) is not used on the worker: the pool opens the new file and reads it.
    #[tokio::test]
    async fn meta_on_a_replaced_file_goes_to_the_pool() {
        let root = tempfile::tempdir().unwrap();
        let user = started(root.path()).await;
        user.meta().await.unwrap();
        let before = user.meta().await.unwrap();
        let path = user.files.collection();
        let other = root.path().join("other.anki2");
        std::fs::copy(&path, &other).unwrap();
        let conn = rusqlite::Connection::open(&other).unwrap();
        conn.execute("UPDATE col SET usn = usn + 41", []).unwrap();
        drop(conn);
        std::fs::rename(&other, &path).unwrap();
        let (after, pool_hops) = hops(user.meta()).await;
        assert_eq!(pool_hops, 1);
        assert_eq!(after.unwrap().usn, before.usn + 41);
    }

    /// A user whose `media.db` exists but is not kept gets `meta` from the pool, which opens
    /// it and reads its USN; the next one reads it on the worker.
    #[tokio::test]
    async fn meta_opens_an_unkept_media_store_on_the_pool() {
        let root = tempfile::tempdir().unwrap();
        let user = started(root.path()).await;
        user.meta().await.unwrap();
        let db = crate::media::db::MediaDb::open(&user.files).unwrap();
        drop(db);
        let (state, pool_hops) = hops(user.meta()).await;
        assert_eq!(pool_hops, 1);
        let (again, pool_hops) = hops(user.meta()).await;
        assert_eq!(pool_hops, 0);
        assert_eq!(state.unwrap().media_usn, again.unwrap().media_usn);
    }

    /// A `meta` on the worker is a use of the kept `media.db` connection too: it notes the
    /// time, so that the idle housekeeping does not close a store every sync reads.
    #[tokio::test]
    async fn meta_on_the_worker_notes_the_use_of_the_media_store() {
        let root = tempfile::tempdir().unwrap();
        let user = started(root.path()).await;
        drop(crate::media::db::MediaDb::open(&user.files).unwrap());
        user.meta().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        let before = user.registry.lock(1).await.media_idle_for().unwrap();
        let (state, pool_hops) = hops(user.meta()).await;
        state.unwrap();
        assert_eq!(pool_hops, 0, "on the worker");
        let after = user.registry.lock(1).await.media_idle_for().unwrap();
        assert!(after < before, "{after:?} after, {before:?} before");
    }

    #[tokio::test]
    async fn housekeeping_closes_a_kept_connection_once_unused_long_enough() {
        let root = tempfile::tempdir().unwrap();
        let files = DataDir::new(root.path().to_path_buf()).unwrap().user(1);
        ensure_collection(&files).unwrap();
        let registry = Registry::default();
        let keep = |mut slot: UserGuard| {
            let conn = CachedCollection::open(&files.collection())
                .unwrap()
                .put_away()
                .expect("within the cap");
            slot.keep_collection(conn);
        };
        keep(registry.lock(1).await);
        // Not unused for long enough: kept.
        tidy_user(
            registry.lock(1).await,
            1,
            Duration::from_secs(300),
            IDLE_CLOSE,
        )
        .await;
        assert!(registry.lock(1).await.collection_idle_for().is_some());
        // Past the limit: closed.
        tidy_user(
            registry.lock(1).await,
            1,
            Duration::from_secs(300),
            Duration::ZERO,
        )
        .await;
        assert!(registry.lock(1).await.collection_idle_for().is_none());
    }
}
