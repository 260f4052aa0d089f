//! The threads that verify password hashes: few, and at a lower CPU priority than syncs.
//!
//! One Django PBKDF2 verification is about a second of CPU (1,000,000 iterations). On the
//! general blocking pool, twenty logins at once would run twenty derivations side by side and
//! take every core from the users who are syncing. Here at most `cores - 1` (at least one)
//! derivations run at a time, each on a thread whose nice value is raised by
//! [`NICE_INCREMENT`], so the kernel gives the cores to sync work first and to hashing what is
//! left. Further logins wait in a first-come queue; a login whose client has gone away by the
//! time its turn comes is skipped (nobody is waiting for its answer).
//!
//! Every verification still runs in full: queueing changes when a derivation starts, not what
//! it costs, so a failed login costs what a successful one does (see `login::check_password`),
//! and the failed-login throttle (`throttle.rs`) is checked before a login joins the queue.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

/// How much the hashing threads' nice value is raised (0 is the default, 19 the lowest
/// priority). At +5 the kernel's scheduler gives such a thread about a quarter of a core that
/// a normal thread also wants, and the whole core when nothing else runs. +10 (a tenth)
/// protected syncs as well in the benchmark, but on a machine busy with other processes it
/// made each login wait seconds: seeding 32 users took 4x as long.
pub const NICE_INCREMENT: i32 = 5;

type Job = Box<dyn FnOnce() + Send>;

/// A fixed set of hashing threads fed from one queue.
pub struct HashPool {
    sender: Mutex<mpsc::Sender<Job>>,
    threads: usize,
}

/// The hashing threads could not take the job (they are gone). Not expected while running.
#[derive(Debug, thiserror::Error)]
#[error("the password hashing threads are unavailable")]
pub struct PoolGone;

impl From<PoolGone> for crate::error::ApiError {
    fn from(err: PoolGone) -> Self {
        Self::Internal(err.into())
    }
}

impl HashPool {
    /// Starts `threads` (at least one) hashing threads, each at `nice_increment` above the
    /// default nice value (ignored where the system refuses it).
    pub fn new(threads: usize, nice_increment: i32) -> std::io::Result<Self> {
        let threads = threads.max(1);
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        for index in 0..threads {
            let receiver = Arc::clone(&receiver);
            std::thread::Builder::new()
                .name(format!("password-hash-{index}"))
                .spawn(move || {
                    lower_this_threads_priority(nice_increment);
                    loop {
                        let job = match receiver.lock() {
                            Ok(queue) => queue.recv(),
                            Err(_) => return,
                        };
                        let Ok(job) = job else {
                            return;
                        };
                        // A panicking job must not take a hashing thread with it; its caller
                        // sees the dropped answer channel.
                        let _ = catch_unwind(AssertUnwindSafe(job));
                    }
                })?;
        }
        Ok(Self {
            sender: Mutex::new(sender),
            threads,
        })
    }

    /// The process's pool: `cores - 1` threads, at least one.
    pub fn shared() -> Option<&'static HashPool> {
        static POOL: OnceLock<Option<HashPool>> = OnceLock::new();
        POOL.get_or_init(|| {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
            match HashPool::new(cores.saturating_sub(1).max(1), NICE_INCREMENT) {
                Ok(pool) => Some(pool),
                Err(err) => {
                    tracing::error!(error = %err, "cannot start the password hashing threads");
                    None
                }
            }
        })
        .as_ref()
    }

    /// How many derivations can run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Queues `work` at once and returns a future of its result. Dropping the future before
    /// the work has started makes the pool skip it.
    pub fn submit<T, F>(
        &self,
        work: F,
    ) -> impl std::future::Future<Output = Result<T, PoolGone>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            if answer.is_closed() {
                return;
            }
            let _ = answer.send(work());
        });
        let queued = self
            .sender
            .lock()
            .map_err(|_| PoolGone)
            .and_then(|sender| sender.send(job).map_err(|_| PoolGone));
        async move {
            queued?;
            answered.await.map_err(|_| PoolGone)
        }
    }
}

/// Runs `work` on the shared hashing threads, or on the blocking pool if they could not be
/// started.
pub async fn verify<T, F>(work: F) -> Result<T, PoolGone>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    match HashPool::shared() {
        Some(pool) => pool.submit(work).await,
        None => tokio::task::spawn_blocking(work)
            .await
            .map_err(|_| PoolGone),
    }
}

#[cfg(target_os = "linux")]
fn lower_this_threads_priority(increment: i32) {
    // On Linux a nice value belongs to a thread: PRIO_PROCESS with a thread id sets that
    // thread's alone. Raising it needs no privilege.
    // SAFETY: gettid and setpriority have no memory-safety preconditions.
    let result = unsafe {
        let tid = libc::gettid();
        let current = libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t);
        libc::setpriority(
            libc::PRIO_PROCESS,
            tid as libc::id_t,
            (current + increment).min(19),
        )
    };
    if result != 0 {
        tracing::debug!("could not lower the priority of a password hashing thread");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority(_increment: i32) {}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn no_more_verifications_run_at_once_than_the_pool_has_threads() {
        let pool = HashPool::new(2, 0).unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|n| {
                let running = Arc::clone(&running);
                let most = Arc::clone(&most);
                pool.submit(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(20));
                    running.fetch_sub(1, Ordering::SeqCst);
                    n * 10
                })
            })
            .collect();
        let results = futures_util::future::join_all(jobs).await;
        let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
        assert_eq!(results, (0..8).map(|n| n * 10).collect::<Vec<_>>());
        let most = most.load(Ordering::SeqCst);
        assert!((1..=2).contains(&most), "{most} ran at once");
        assert_eq!(pool.threads(), 2);
    }

    #[tokio::test]
    async fn a_queued_verification_whose_caller_left_is_skipped() {
        let pool = HashPool::new(1, 0).unwrap();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let first = pool.submit(move || blocked.recv().is_ok());
        let skipped_ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&skipped_ran);
        // Queued behind the first job, then abandoned by its caller.
        drop(pool.submit(move || flag.store(true, Ordering::SeqCst)));
        release.send(()).unwrap();
        assert!(first.await.unwrap());
        // The one thread takes jobs in order: once the third has run, the second was taken.
        assert_eq!(pool.submit(|| 3).await.unwrap(), 3);
        assert!(!skipped_ran.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_job_leaves_the_thread_working() {
        let pool = HashPool::new(1, 0).unwrap();
        assert!(pool.submit(|| panic!("boom")).await.is_err());
        assert_eq!(pool.submit(|| 7).await.unwrap(), 7);
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn hashing_threads_run_at_a_lower_priority() {
        let pool = HashPool::new(1, 3).unwrap();
        let (nice_here, nice_there) = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                // SAFETY: getpriority has no memory-safety preconditions.
                let own = || unsafe {
                    libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t)
                };
                (own(), pool.submit(own).await.unwrap())
            });
        assert_eq!(nice_there, (nice_here + 3).min(19));
    }
}
