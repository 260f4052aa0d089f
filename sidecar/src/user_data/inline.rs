//! Which calls of a normal sync run on the async worker instead of the blocking pool
//! (docs/performance.md, "Small sync calls on the worker").
//!
//! Handing a call to the blocking pool and back costs two thread wake-ups, more than the work
//! of a small call. A call of an open sync may run where its request arrived when its work is
//! known to be small:
//!
//! - it works inside the sync's transaction, which holds SQLite's write lock since `start`
//!   (`BEGIN IMMEDIATE`) on a connection that is already open: it cannot wait for a lock, open
//!   a file, commit or fsync (`finish`, which commits, always goes to the pool);
//! - its request carries at most [`MAX_ITEMS`] rows, ids or objects, in at most
//!   [`MAX_BODY`] bytes of JSON (so that a few huge rows cannot hold the worker);
//! - and the same kind of call for this user last took at most [`BUDGET`], wherever it ran.
//!   The first call of each kind, and any call after one that took longer, runs on the pool and
//!   is timed there; so a collection whose work grew (an import, a full upload) goes back to
//!   the pool after at most one slow call.
//!
//! Only the call's own work runs on the worker. Ending the sync after it (a rollback, the
//! repair of a damaged file) always goes to the pool.
//!
//! `meta` and `start` follow the same rule between syncs (docs/performance.md, "`meta` and
//! `start` on the worker"): only when no sync is open (nothing to roll back) and the user's
//! kept connections still serve their files and had their one-time checks (nothing to open,
//! convert or repair); otherwise, and for the first of each kind, they go to the pool.

use std::time::Duration;

/// The longest a call may have taken to let the next one of its kind run on the worker, by the
/// wall clock (so a thread the kernel preempted counts as busy). In the load benchmark at 8
/// devices the calls of a review sync took 10 to 115 microseconds at the median and 16 to 290
/// at the 90th percentile (docs/performance.md). Tokio's rule of thumb is 10 to 100 between two
/// awaits; a worker held up to half a millisecond now and then stays far below a sync's p99
/// (about 10 ms at 8 devices), and the other worker takes over its queued tasks meanwhile.
pub const BUDGET: Duration = Duration::from_micros(500);

/// The most rows, ids or objects a request may carry to run on the worker. A review sync's
/// `applyChunk` carries 20 (10 cards, 10 reviews); clients send up to 250.
pub const MAX_ITEMS: usize = 64;

/// The most bytes of JSON (after decompression) a request may carry to run on the worker: the
/// size up to which bodies are parsed on the worker too (`transport::body`). A review sync's
/// `applyChunk` carries about 3 KB.
pub const MAX_BODY: usize = 64 * 1024;

/// What a request carries, for where its call runs.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Rows, ids or objects.
    pub items: usize,
    /// Bytes of JSON, after decompression.
    pub bytes: usize,
}

impl Load {
    /// A request that carries nothing the call works through (`meta`).
    pub const NONE: Self = Self { items: 0, bytes: 0 };
}

/// The calls of a normal sync that may run on the worker.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CallKind {
    /// Only when no sync is open, on the kept connections: nothing to roll back, open or
    /// repair (`UserData::meta`).
    Meta,
    /// Only when no sync is open, on the kept connection (`UserData::start_sync`); its items
    /// are the graves a legacy client sends with it.
    Start,
    ApplyGraves,
    ApplyChanges,
    Chunk,
    ApplyChunk,
    SanityCheck,
}

const KINDS: usize = 7;

/// How long one user's last call of each kind took; kept in the user's slot.
#[derive(Default, Debug)]
pub struct CallCosts {
    last: [Option<Duration>; KINDS],
}

impl CallCosts {
    /// Whether a call of `kind` whose request carries `load` runs on the worker.
    pub fn runs_inline(&self, kind: CallKind, load: Load) -> bool {
        load.items <= MAX_ITEMS
            && load.bytes <= MAX_BODY
            && self.last[kind as usize].is_some_and(|took| took <= BUDGET)
    }

    /// Records how long a call of `kind` took.
    pub fn record(&mut self, kind: CallKind, took: Duration) {
        self.last[kind as usize] = Some(took);
    }

    /// Forgets every time: the user's kept connections were closed, or their files replaced or
    /// removed (`UserSlot::take_files`, the idle housekeeping), so the next call of each kind is
    /// timed on the pool again.
    pub fn forget(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAST: Duration = Duration::from_micros(40);
    const SLOW: Duration = Duration::from_millis(3);

    const fn load(items: usize) -> Load {
        Load { items, bytes: 100 }
    }

    #[test]
    fn the_first_call_of_each_kind_goes_to_the_pool() {
        let mut costs = CallCosts::default();
        assert!(!costs.runs_inline(CallKind::ApplyChunk, load(1)));
        costs.record(CallKind::ApplyChunk, FAST);
        assert!(costs.runs_inline(CallKind::ApplyChunk, load(20)));
        // Each kind is timed on its own.
        assert!(!costs.runs_inline(CallKind::SanityCheck, load(0)));
    }

    #[test]
    fn a_slow_call_sends_the_next_of_its_kind_to_the_pool_until_one_is_fast_again() {
        let mut costs = CallCosts::default();
        costs.record(CallKind::Chunk, FAST);
        costs.record(CallKind::Chunk, SLOW);
        assert!(!costs.runs_inline(CallKind::Chunk, load(0)));
        costs.record(CallKind::Chunk, BUDGET);
        assert!(costs.runs_inline(CallKind::Chunk, load(0)));
        costs.record(CallKind::Chunk, BUDGET + Duration::from_nanos(1));
        assert!(!costs.runs_inline(CallKind::Chunk, load(0)));
    }

    #[test]
    fn a_large_request_goes_to_the_pool_whatever_the_last_call_took() {
        let mut costs = CallCosts::default();
        costs.record(CallKind::ApplyChunk, FAST);
        assert!(costs.runs_inline(CallKind::ApplyChunk, load(MAX_ITEMS)));
        assert!(!costs.runs_inline(CallKind::ApplyChunk, load(MAX_ITEMS + 1)));
        let few_but_large = Load {
            items: 1,
            bytes: MAX_BODY + 1,
        };
        assert!(!costs.runs_inline(CallKind::ApplyChunk, few_but_large));
        let at_the_cap = Load {
            items: MAX_ITEMS,
            bytes: MAX_BODY,
        };
        assert!(costs.runs_inline(CallKind::ApplyChunk, at_the_cap));
    }

    #[test]
    fn forgetting_sends_every_kind_back_to_the_pool() {
        let mut costs = CallCosts::default();
        costs.record(CallKind::ApplyGraves, FAST);
        costs.record(CallKind::ApplyChanges, FAST);
        costs.forget();
        assert!(!costs.runs_inline(CallKind::ApplyGraves, load(0)));
        assert!(!costs.runs_inline(CallKind::ApplyChanges, load(0)));
    }
}
