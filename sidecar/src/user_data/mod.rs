//! The service floor: every operation on one user's data (collection, media store, import
//! ledger), each run under that user's lock and off the async executor; only the small calls
//! of an open normal sync may run on the worker (`inline`).
//!
//! Handlers extract a request, call one operation of [`UserData`] and encode its answer. The
//! operations call the domain modules (`normal_sync`, `media`, `import`), which call `storage`
//! and `collection`; nothing below this floor knows about HTTP, and nothing above it takes
//! the user's lock, whose registry is private to this module.

pub mod admin;
pub mod cluster;
mod imports;
mod inline;
mod media;
mod registry;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use crate::collection::cached::CachedCollection;
use crate::config::Settings;
use crate::import::ImportError;
use crate::media::download_zip::DownloadError;
use crate::media::upload_zip::UploadError;
use crate::normal_sync::{NormalSyncSession, SyncOpError};
use crate::storage::{DataDir, UserFiles};
use cluster::{Acquire, AcquireError, ClusterLocks};
use registry::{Registry, UserGuard};

pub use imports::ImportReply;
pub use sync::{CollectionState, NextChunk, SessionCall};

/// What went wrong in an operation on a user's data. `crate::error` gives each its status.
#[derive(Debug, thiserror::Error)]
pub enum UserDataError {
    /// A stateful sync call without the matching open sync.
    #[error("no active sync for this session; start a new sync")]
    NoSession,
    /// Work that must wait for the user's sync to end waited `retry_after`'s worth in vain.
    #[error("the user is syncing right now; retry the import shortly")]
    Syncing { retry_after: Duration },
    /// An `Idempotency-Key` used before for a different package.
    #[error("this Idempotency-Key was already used for a different package")]
    KeyReused,
    /// A request over one of the caps of `crate::limits`.
    #[error("{0}")]
    TooLarge(String),
    #[error(transparent)]
    Sync(#[from] SyncOpError),
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error(transparent)]
    MediaDownload(#[from] DownloadError),
    #[error(transparent)]
    MediaUpload(#[from] UploadError),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<tokio::task::JoinError> for UserDataError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(anyhow::anyhow!("blocking task failed: {err}"))
    }
}

crate::internal_from::internal_from!(UserDataError: std::io::Error, sqlx::Error, rusqlite::Error);

/// How long a caller that gave up waiting for a busy user is told to wait before retrying.
const RETRY_AFTER: Duration = Duration::from_secs(5);

impl From<AcquireError> for UserDataError {
    fn from(err: AcquireError) -> Self {
        match err {
            AcquireError::TimedOut => Self::Syncing {
                retry_after: RETRY_AFTER,
            },
            AcquireError::Database(err) => Self::Internal(err.context("taking the user's lock")),
        }
    }
}

pub type UserDataResult<T> = Result<T, UserDataError>;

/// A file received before the user's lock was taken, or the note that it was over its cap.
pub enum Received {
    File(tempfile::NamedTempFile),
    TooLarge,
}

/// Every user's data: the data folder, the per-user locks and the settings the operations
/// need. Cheap to clone.
#[derive(Clone)]
pub struct Users {
    data: DataDir,
    registry: Arc<Registry>,
    settings: Arc<Settings>,
}

impl Users {
    /// `cluster` is the lock pool of cluster mode, `None` for a single process.
    pub fn new(data: DataDir, settings: Arc<Settings>, cluster: Option<ClusterLocks>) -> Self {
        Self {
            data,
            registry: Arc::new(Registry::new(cluster.map(Arc::new))),
            settings,
        }
    }

    /// Cluster mode: answers other nodes' requests to end a user's open sync here
    /// (`cluster.rs`). Does nothing in single-process mode.
    pub fn spawn_cluster_listener(&self) {
        let Some(cluster) = self.registry.cluster() else {
            return;
        };
        let registry = self.registry.clone();
        cluster.spawn_listener(move |user_id, heard| {
            let registry = registry.clone();
            async move {
                if !registry.knows(user_id) {
                    return;
                }
                let mut slot = registry.lock(user_id).await;
                // The request is about the lock held when it was heard; one taken since is
                // newer than the other node's operation, which has had its turn by then.
                let requested = slot.session.is_some()
                    && slot
                        .cluster_lock_acquired()
                        .is_some_and(|acquired| acquired <= heard);
                if requested
                    && let Err(err) =
                        end_session(&mut slot, "replaced by a start on another node").await
                {
                    tracing::warn!(user_id, error = %err, "ending a sync for another node failed");
                }
                slot.unlock().await;
            }
        });
    }

    /// The data of one Django user, by id.
    pub fn user(&self, user_id: i64) -> UserData {
        UserData {
            user_id,
            files: self.data.user(user_id),
            registry: self.registry.clone(),
            settings: self.settings.clone(),
        }
    }
}

/// One user's data, and the operations on it.
pub struct UserData {
    user_id: i64,
    files: UserFiles,
    registry: Arc<Registry>,
    settings: Arc<Settings>,
}

/// What an operation does with a normal sync it finds open.
#[derive(Clone, Copy)]
enum OpenSync {
    /// Rolls it back first; the reason goes to its log line.
    End(&'static str),
    /// Leaves it open (media calls run beside a normal sync).
    Keep,
}

impl UserData {
    pub fn user_id(&self) -> i64 {
        self.user_id
    }

    /// The user's folder, where bodies are spooled before the lock is taken.
    pub fn folder(&self) -> &std::path::Path {
        self.files.dir()
    }

    /// Creates the user's folder, for a body that is spooled there before the lock is taken.
    pub async fn prepare_folder(&self) -> UserDataResult<()> {
        let files = self.files.clone();
        blocking(move || files.ensure_dir()).await
    }

    /// Takes the user's lock, deals with an open sync as `open_sync` says, runs `work` on a
    /// blocking thread with the user's files, and releases the lock, in one blocking hop.
    ///
    /// Ending the sync (`OpenSync::End`) also closes the user's kept connections before `work`
    /// runs: such work replaces, deletes or rewrites the collection or media files by other
    /// means (full upload and download, reset). `OpenSync::Keep` leaves them open: that work
    /// only reads (a reset's dry run). Media work goes through `with_media` instead.
    async fn exclusive<T, E, F>(&self, open_sync: OpenSync, work: F) -> UserDataResult<T>
    where
        T: Send + 'static,
        E: Into<UserDataError> + Send + 'static,
        F: FnOnce(&UserFiles) -> Result<T, E> + Send + 'static,
    {
        let mut slot = self.registry.lock(self.user_id).await;
        slot.hold_cluster(match open_sync {
            OpenSync::End(_) => Acquire::Supersede,
            OpenSync::Keep => Acquire::Wait,
        })
        .await?;
        let (session, kept) = match open_sync {
            OpenSync::End(reason) => (
                slot.session.take().map(|session| (session, reason)),
                slot.take_files(),
            ),
            OpenSync::Keep => (None, (None, None)),
        };
        let files = self.files.clone();
        let result = blocking(move || {
            if let Some((session, reason)) = session {
                drop(end_now(session, reason));
            }
            drop(kept);
            work(&files)
        })
        .await;
        slot.unlock().await;
        result
    }
}

/// Runs `work` on tokio's blocking pool.
async fn blocking<T, E, F>(work: F) -> UserDataResult<T>
where
    T: Send + 'static,
    E: Into<UserDataError> + Send + 'static,
    F: FnOnce() -> Result<T, E> + Send + 'static,
{
    #[cfg(test)]
    POOL_HOPS.with(|hops| hops.set(hops.get() + 1));
    tokio::task::spawn_blocking(work).await?.map_err(Into::into)
}

#[cfg(test)]
thread_local! {
    /// How many times [`blocking`] was called on this thread: in a test on tokio's
    /// current-thread runtime, how many hops to the pool the test's calls made.
    pub(crate) static POOL_HOPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Ends an open normal sync on this thread: logs its outcome and rolls it back. Returns its
/// connection, put away to be kept, if the rollback left it clean.
fn end_now(session: NormalSyncSession, reason: &str) -> Option<CachedCollection> {
    session.log_outcome(reason);
    session.rollback().and_then(CachedCollection::put_away)
}

/// Ends the user's open normal sync, if any, rolling it back off the async executor; its
/// connection goes back to the slot.
async fn end_session(slot: &mut UserGuard, reason: &'static str) -> UserDataResult<()> {
    if let Some(session) = slot.session.take() {
        let conn = blocking(move || Ok::<_, UserDataError>(end_now(session, reason))).await?;
        if let Some(conn) = conn {
            slot.keep_collection(conn);
        }
    }
    Ok(())
}
