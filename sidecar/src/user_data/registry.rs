//! Per-user serialization without a global lock.
//!
//! A map from Django user id to that user's slot. The map's own mutex is held only to find or
//! insert a slot; the work of one user then runs under that user's async mutex, so different
//! users proceed in parallel and one user's requests run one at a time.
//!
//! Each slot also has a bell that rings whenever the lock is released with no normal sync
//! open, so work that must not run during a sync (an import) sleeps until a sync ends instead
//! of polling.
//!
//! In cluster mode the lock has a second half, the user's PostgreSQL advisory lock
//! (`cluster.rs`), taken with [`UserGuard::hold_cluster`] by the operations that touch the
//! user's files. It is kept in the slot while a normal sync is open and released with the
//! local lock otherwise.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, Notify, OwnedMutexGuard};
use tokio::time::Instant;

use super::cluster::{Acquire, AcquireError, ClusterLocks, HeldLock};
use super::inline::CallCosts;
use crate::collection::cached::CachedCollection;
use crate::media::cached::CachedMediaDb;
use crate::normal_sync::NormalSyncSession;

/// What one user's requests share while they hold the user's lock.
#[derive(Default)]
pub struct UserSlot {
    /// The active normal sync, if any (kept here between HTTP requests).
    pub session: Option<NormalSyncSession>,
    /// Cluster mode: the user's PostgreSQL lock, while this node holds it.
    cluster_lock: Option<HeldLock>,
    /// The user's collection connection kept open between requests and syncs, when no sync
    /// holds it (`collection::cached`).
    collection: Option<CachedCollection>,
    /// The user's `media.db` connection kept open between requests (`media::cached`).
    media: Option<CachedMediaDb>,
    /// How long the user's last calls of an open sync took, which decides where the next ones
    /// run (`user_data::inline`).
    pub call_costs: CallCosts,
}

impl UserSlot {
    /// Takes the PostgreSQL lock out of the slot to release it. Everything the slot keeps
    /// open on the user's files must be closed first, since another node may open them as
    /// soon as the lock is released.
    fn take_cluster_lock(&mut self) -> Option<HeldLock> {
        self.cluster_lock.as_ref()?;
        self.close_files_before_cluster_unlock();
        self.cluster_lock.take()
    }

    /// Closes the files the slot keeps open between requests before another node may open
    /// them (the lock's release). The open sync's connection is never released with it.
    fn close_files_before_cluster_unlock(&mut self) {
        self.close_files();
    }

    /// Takes the kept collection connection out of the slot, to use it on a blocking thread;
    /// [`UserSlot::keep_collection`] puts it back.
    pub fn cached_collection(&mut self) -> Option<CachedCollection> {
        self.collection.take()
    }

    /// Keeps `collection` open for the user's next request, if it may be kept; otherwise it is
    /// closed. Callers put it away first on the blocking thread that used it
    /// (`CachedCollection::put_away`), so that closing and the file check stay off the executor.
    pub fn keep_collection(&mut self, collection: CachedCollection) {
        if collection.keepable() {
            self.collection = Some(collection);
        }
    }

    /// Closes the kept connections, to the collection and to `media.db`. Whatever replaces,
    /// deletes or moves those files, or writes the collection by other means, calls it first,
    /// under the user's lock; so does whatever hands the user to another process. An open
    /// normal sync holds its own connection: end it first (`user_data::end_session`).
    pub fn close_files(&mut self) {
        drop(self.take_files());
    }

    /// Takes the kept connections out of the slot, to be closed on a blocking thread before
    /// their files are replaced, deleted or written by other means (the same callers as
    /// [`UserSlot::close_files`]). The times of the user's last sync calls go with them: they
    /// were taken on those files (`user_data::inline`).
    pub fn take_files(&mut self) -> (Option<CachedCollection>, Option<CachedMediaDb>) {
        self.call_costs.forget();
        (self.collection.take(), self.media.take())
    }

    /// How long the kept collection connection has gone unused, if there is one.
    pub fn collection_idle_for(&self) -> Option<std::time::Duration> {
        self.collection.as_ref().map(CachedCollection::idle_for)
    }

    /// Takes the kept `media.db` connection out of the slot, to use it on a blocking thread;
    /// [`UserSlot::keep_media`] puts it back.
    pub fn cached_media(&mut self) -> Option<CachedMediaDb> {
        self.media.take()
    }

    /// Keeps `media` open for the user's next request. Callers put it away first on the
    /// blocking thread that used it (`CachedMediaDb::put_away`).
    pub fn keep_media(&mut self, media: CachedMediaDb) {
        self.media = Some(media);
    }

    /// How long the kept `media.db` connection has gone unused, if there is one.
    pub fn media_idle_for(&self) -> Option<std::time::Duration> {
        self.media.as_ref().map(CachedMediaDb::idle_for)
    }
}

#[derive(Default)]
struct Entry {
    slot: Arc<AsyncMutex<UserSlot>>,
    /// Rung when the lock is released with no sync open.
    between_syncs: Notify,
}

/// The user's lock, held. Releasing it with no sync open wakes whoever waits for that.
pub struct UserGuard {
    guard: Option<OwnedMutexGuard<UserSlot>>,
    entry: Arc<Entry>,
    user_id: i64,
    cluster: Option<Arc<ClusterLocks>>,
}

impl UserGuard {
    /// In cluster mode, makes sure this node holds the user's PostgreSQL lock, waiting as
    /// `how` says; in single-process mode, does nothing.
    pub async fn hold_cluster(&mut self, how: Acquire) -> Result<(), AcquireError> {
        let Some(cluster) = self.cluster.clone() else {
            return Ok(());
        };
        let user_id = self.user_id;
        let slot = self.guard.as_mut().expect("held until drop");
        if slot.cluster_lock.is_none() {
            slot.cluster_lock = Some(cluster.acquire(user_id, how).await?);
        }
        Ok(())
    }

    /// When this node took the user's PostgreSQL lock, if it holds it.
    pub fn cluster_lock_acquired(&self) -> Option<std::time::Instant> {
        let slot = self.guard.as_ref().expect("held until drop");
        slot.cluster_lock.as_ref().map(HeldLock::acquired)
    }

    /// Whether this node still holds the user's PostgreSQL lock (always, in single-process
    /// mode). Called by an open sync before each of its calls.
    pub async fn still_holds_cluster(&mut self) -> bool {
        if self.cluster.is_none() {
            return true;
        }
        let slot = self.guard.as_mut().expect("held until drop");
        match slot.cluster_lock.as_mut() {
            Some(held) => held.is_alive().await,
            None => false,
        }
    }

    /// Releases the lock, the PostgreSQL half first (unless a sync stays open), so that the
    /// next local request finds it free. Dropping the guard does the same, with the
    /// PostgreSQL unlock finishing in the background.
    pub async fn unlock(mut self) {
        let held = self
            .guard
            .as_mut()
            .filter(|slot| slot.session.is_none())
            .and_then(|slot| slot.take_cluster_lock());
        if let Some(held) = held {
            held.release().await;
        }
    }
}

impl Deref for UserGuard {
    type Target = UserSlot;

    fn deref(&self) -> &UserSlot {
        self.guard.as_ref().expect("held until drop")
    }
}

impl DerefMut for UserGuard {
    fn deref_mut(&mut self) -> &mut UserSlot {
        self.guard.as_mut().expect("held until drop")
    }
}

impl Drop for UserGuard {
    fn drop(&mut self) {
        let between_syncs = self
            .guard
            .as_ref()
            .is_some_and(|slot| slot.session.is_none());
        let held = if between_syncs {
            self.guard
                .as_mut()
                .and_then(|slot| slot.take_cluster_lock())
        } else {
            None
        };
        if let Some(held) = held {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => drop(runtime.spawn(held.release())),
                // Dropping closes its connection, which releases the lock as well.
                Err(_) => drop(held),
            }
        }
        // Unlock first, so that a woken waiter finds the lock free.
        drop(self.guard.take());
        if between_syncs {
            self.entry.between_syncs.notify_waiters();
        }
    }
}

#[derive(Default)]
pub struct Registry {
    users: Mutex<HashMap<i64, Arc<Entry>>>,
    /// Cluster mode's lock pool; `None` in single-process mode.
    cluster: Option<Arc<ClusterLocks>>,
}

impl Registry {
    pub fn new(cluster: Option<Arc<ClusterLocks>>) -> Self {
        Self {
            users: Mutex::default(),
            cluster,
        }
    }

    pub fn cluster(&self) -> Option<&Arc<ClusterLocks>> {
        self.cluster.as_ref()
    }

    /// Whether the user has a slot on this node (without creating one).
    pub fn knows(&self, user_id: i64) -> bool {
        let users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        users.contains_key(&user_id)
    }

    fn entry(&self, user_id: i64) -> Arc<Entry> {
        let mut users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        users.entry(user_id).or_default().clone()
    }

    /// Waits for the user's lock. Collection and media work of that user happens under it.
    pub async fn lock(&self, user_id: i64) -> UserGuard {
        let entry = self.entry(user_id);
        let guard = entry.slot.clone().lock_owned().await;
        UserGuard {
            guard: Some(guard),
            entry,
            user_id,
            cluster: self.cluster.clone(),
        }
    }

    /// The user's lock if nobody holds it now; for housekeeping that must never wait.
    pub fn try_lock(&self, user_id: i64) -> Option<UserGuard> {
        let entry = self.entry(user_id);
        let guard = entry.slot.clone().try_lock_owned().ok()?;
        Some(UserGuard {
            guard: Some(guard),
            entry,
            user_id,
            cluster: self.cluster.clone(),
        })
    }

    /// The user's lock once no normal sync is open. Waiting for the lock itself has no limit,
    /// as for every request; waiting for an open sync to end gives up at `deadline`, and then
    /// the answer is `None`. The wait is woken by the end of the sync, not polled.
    pub async fn lock_between_syncs(&self, user_id: i64, deadline: Instant) -> Option<UserGuard> {
        let entry = self.entry(user_id);
        let mut logged = false;
        loop {
            // Registered before the check, so a sync that ends in between still wakes us.
            let ended = entry.between_syncs.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            let slot = self.lock(user_id).await;
            if slot.session.is_none() {
                return Some(slot);
            }
            drop(slot);
            if !logged {
                tracing::info!(user_id, "import waits for the user's sync to end");
                logged = true;
            }
            if Instant::now() >= deadline {
                return None;
            }
            // Woken or timed out, the loop looks again before giving up.
            let _ = tokio::time::timeout_at(deadline, ended).await;
        }
    }

    /// The ids of users whose slot exists, for housekeeping such as idle-session expiry.
    pub fn known_users(&self) -> Vec<i64> {
        let users = self
            .users
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        users.keys().copied().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn different_users_do_not_wait_for_each_other() {
        let registry = Registry::default();
        let _alice = registry.lock(1).await;
        let bob = tokio::time::timeout(Duration::from_secs(1), registry.lock(2)).await;
        assert!(bob.is_ok(), "user 2 must not wait for user 1");
    }

    #[tokio::test]
    async fn one_user_is_serialized() {
        let registry = Arc::new(Registry::default());
        let first = registry.lock(7).await;
        let second = tokio::time::timeout(Duration::from_millis(100), registry.lock(7)).await;
        assert!(
            second.is_err(),
            "a second request of the same user must wait"
        );
        drop(first);
        assert!(
            tokio::time::timeout(Duration::from_secs(1), registry.lock(7))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn without_a_sync_the_lock_between_syncs_is_the_lock() {
        let registry = Registry::default();
        let deadline = Instant::now();
        assert!(registry.lock_between_syncs(3, deadline).await.is_some());
    }

    /// The waiter is woken by the release of the lock: the clock is paused and never advanced
    /// past the deadline, so a polling wait would never see the sync end.
    #[tokio::test(start_paused = true)]
    async fn an_ending_sync_wakes_the_waiter() {
        let registry = Arc::new(Registry::default());
        let mut slot = registry.lock(5).await;
        slot.session = Some(test_session());
        drop(slot);
        let waiter = {
            let registry = registry.clone();
            tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(3600);
                registry.lock_between_syncs(5, deadline).await.is_some()
            })
        };
        tokio::task::yield_now().await;
        let mut slot = registry.lock(5).await;
        if let Some(session) = slot.session.take() {
            session.rollback();
        }
        drop(slot);
        // The paused clock moves only when every task sleeps, so an unchanged clock shows
        // that the waiter was woken, not that it looked again after a sleep.
        let ended = Instant::now();
        assert!(
            waiter.await.unwrap(),
            "the end of the sync must wake the import"
        );
        assert_eq!(Instant::now(), ended, "the waiter must not have slept");
    }

    #[tokio::test(start_paused = true)]
    async fn a_sync_that_stays_open_makes_the_waiter_give_up_at_the_deadline() {
        let registry = Registry::default();
        let mut slot = registry.lock(6).await;
        slot.session = Some(test_session());
        drop(slot);
        let deadline = Instant::now() + Duration::from_secs(5);
        assert!(registry.lock_between_syncs(6, deadline).await.is_none());
    }

    #[tokio::test]
    async fn the_slot_keeps_a_collection_connection_until_it_is_closed() {
        let root = tempfile::tempdir().unwrap();
        let files = crate::storage::DataDir::new(root.path().to_path_buf())
            .unwrap()
            .user(1);
        crate::storage::status::ensure_collection(&files).unwrap();
        let registry = Registry::default();
        let mut slot = registry.lock(1).await;
        assert!(slot.cached_collection().is_none());
        let conn = CachedCollection::open(&files.collection())
            .unwrap()
            .put_away()
            .expect("within the cap");
        slot.keep_collection(conn);
        drop(slot);
        // Kept across the release of the lock, for the user's next request.
        let mut slot = registry.lock(1).await;
        assert!(slot.collection_idle_for().is_some());
        slot.close_files();
        assert!(slot.collection_idle_for().is_none());
        assert!(slot.cached_collection().is_none());
    }

    fn test_session() -> NormalSyncSession {
        let now = std::time::Instant::now();
        NormalSyncSession {
            user_id: 0,
            session_key: "k".into(),
            conn: crate::collection::cached::CachedCollection::in_memory(),
            server_usn: 0,
            client_usn: 0,
            client_is_newer: false,
            pending: None,
            counters: Default::default(),
            started: now,
            last_activity: now,
            client: Default::default(),
        }
    }
}
