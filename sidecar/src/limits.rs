//! Every size cap, count cap and timeout of the server, in one place.
//!
//! Each limit is a command-line flag and an environment variable with a default chosen from
//! what real clients send (see docs/operations.md, "Limits", for the table and the reasons).
//! To add a limit: add a field here with `env = "SIDECAR_..."` and a default, document it in
//! that table, in the README's configuration table and in `.env.example`.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use clap::Args;
use tokio::sync::Semaphore;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * 1024;

/// Bytes in `megabytes` MiB, as the settings give sizes.
fn mib(megabytes: u64) -> u64 {
    megabytes.saturating_mul(MIB)
}

#[derive(Clone, Debug, Args)]
pub struct Limits {
    /// Full uploads (`/sync/upload`): cap on the compressed body, in MiB.
    #[arg(long, env = "SIDECAR_MAX_BODY_MB", default_value_t = 100)]
    pub max_body_mb: u64,

    /// Full uploads: cap on the decompressed body (the collection file), in MiB.
    #[arg(long, env = "SIDECAR_MAX_UNCOMPRESSED_MB", default_value_t = 300)]
    pub max_uncompressed_mb: u64,

    /// Login (`/sync/hostKey`): cap on the body, compressed and decompressed, in KiB.
    #[arg(long, env = "SIDECAR_LOGIN_MAX_BODY_KB", default_value_t = 64)]
    pub login_max_body_kb: u64,

    /// Every other JSON call (`meta`, `start`, `applyChanges`, `applyChunk`, `downloadFiles`,
    /// ...): cap on the body, compressed and decompressed, in MiB.
    #[arg(long, env = "SIDECAR_JSON_MAX_BODY_MB", default_value_t = 32)]
    pub json_max_body_mb: u64,

    /// JSON calls: cap on the number of JSON items (array elements, object keys and values)
    /// in one body, so that a small body cannot parse into gigabytes.
    #[arg(long, env = "SIDECAR_JSON_MAX_ITEMS", default_value_t = 1_000_000)]
    pub json_max_items: u64,

    /// Memory shared by all JSON bodies being read and parsed at once, in MiB. A body that
    /// cannot get its share gets 503 (see `transport::body`).
    #[arg(long, env = "SIDECAR_JSON_MEMORY_MB", default_value_t = 192)]
    pub json_memory_mb: u64,

    /// Rows (revlog, cards and notes together) in one `applyChunk`. Clients send at most 250.
    #[arg(long, env = "SIDECAR_MAX_CHUNK_ROWS", default_value_t = 1000)]
    pub max_chunk_rows: usize,

    /// Ids (cards, notes and decks together) in one `applyGraves`. Clients send at most 250.
    #[arg(long, env = "SIDECAR_MAX_GRAVE_IDS", default_value_t = 2500)]
    pub max_grave_ids: usize,

    /// Media uploads (`/msync/uploadChanges`): cap on the zip, compressed and decompressed, in
    /// MiB. Clients send at most 25 files and stop after 2.5 MiB, but one file may be 100 MiB.
    #[arg(long, env = "SIDECAR_MEDIA_MAX_BODY_MB", default_value_t = 128)]
    pub media_max_body_mb: u64,

    /// Seconds a client has to send the request line and headers.
    #[arg(long, env = "SIDECAR_HEADER_TIMEOUT_SECS", default_value_t = 30)]
    pub header_timeout_secs: u64,

    /// Seconds a connection may sit without a request in progress and without traffic.
    #[arg(long, env = "SIDECAR_IDLE_TIMEOUT_SECS", default_value_t = 90)]
    pub idle_timeout_secs: u64,

    /// Seconds a login or JSON body has to arrive in full; for uploads, the longest pause
    /// allowed between two pieces of the body.
    #[arg(long, env = "SIDECAR_BODY_TIMEOUT_SECS", default_value_t = 60)]
    pub body_timeout_secs: u64,

    /// Open connections per listener. Further clients wait in the kernel's queue until a
    /// connection closes. Lowered at start to fit under the open-files limit.
    #[arg(long, env = "SIDECAR_MAX_CONNECTIONS", default_value_t = 1000)]
    pub max_connections: usize,

    /// Threads for blocking work (SQLite, zstd, zips). Each reserves a stack, which counts
    /// against an address-space limit.
    #[arg(long, env = "SIDECAR_BLOCKING_THREADS", default_value_t = 64)]
    pub blocking_threads: usize,

    /// Async worker threads, which run the HTTP work and the small calls of a sync. Unset:
    /// one fewer than the machine's cores, at least one ([`Limits::worker_threads`]).
    #[arg(long, env = "SIDECAR_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    pub worker_threads: Option<u16>,

    #[arg(skip)]
    json_memory: JsonMemory,
}

impl Limits {
    /// The async worker threads: as set, or one fewer than the machine's cores (at least
    /// one), so that a core is left to the blocking pool, where every `finish` commits and
    /// waits for its fsync. On a 2-core machine a second worker cost 8 to 12% more CPU per
    /// review sync, its wake-ups and stolen tasks, for no more syncs per second
    /// (docs/performance.md, "One core left to the blocking pool").
    pub fn worker_threads(&self) -> usize {
        match self.worker_threads {
            Some(threads) => usize::from(threads),
            None => default_worker_threads(
                std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            ),
        }
    }
}

fn default_worker_threads(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

/// The semaphore behind `json_memory_mb`, made on first use (one per server).
#[derive(Clone, Debug, Default)]
struct JsonMemory(Arc<OnceLock<Arc<Semaphore>>>);

/// Permits of the JSON memory budget are counted in KiB.
pub const BUDGET_UNIT: u64 = KIB;

impl Limits {
    fn body_timeout(&self) -> Duration {
        Duration::from_secs(self.body_timeout_secs.max(1))
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_secs(self.header_timeout_secs.max(1))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs.max(1))
    }

    pub fn full_upload_max_compressed(&self) -> u64 {
        mib(self.max_body_mb)
    }

    pub fn full_upload_max_uncompressed(&self) -> u64 {
        mib(self.max_uncompressed_mb)
    }

    pub fn media_max_bytes(&self) -> u64 {
        mib(self.media_max_body_mb)
    }

    fn json_budget(&self) -> Arc<Semaphore> {
        self.json_memory
            .0
            .get_or_init(|| {
                let units = mib(self.json_memory_mb) / BUDGET_UNIT;
                let units = usize::try_from(units)
                    .unwrap_or(Semaphore::MAX_PERMITS)
                    .min(Semaphore::MAX_PERMITS);
                Arc::new(Semaphore::new(units))
            })
            .clone()
    }

    /// `/sync/hostKey`: a few hundred bytes from real clients.
    pub fn login_body(&self) -> BodyLimits {
        let cap = self.login_max_body_kb.saturating_mul(KIB);
        BodyLimits {
            max_compressed: cap,
            max_uncompressed: cap,
            max_items: Some(self.json_max_items.min(cap)),
            timeout: self.body_timeout(),
            budget: Some(self.json_budget()),
        }
    }

    /// Every JSON call but the login.
    pub fn json_body(&self) -> BodyLimits {
        let cap = mib(self.json_max_body_mb);
        BodyLimits {
            max_compressed: cap,
            max_uncompressed: cap,
            max_items: Some(self.json_max_items),
            timeout: self.body_timeout(),
            budget: Some(self.json_budget()),
        }
    }

    /// `/msync/uploadChanges`, spooled to disk.
    pub fn media_body(&self) -> BodyLimits {
        let cap = self.media_max_bytes();
        BodyLimits {
            max_compressed: cap,
            max_uncompressed: cap,
            max_items: None,
            timeout: self.body_timeout(),
            budget: None,
        }
    }

    /// `/sync/upload`, spooled to disk.
    pub fn full_upload_body(&self) -> BodyLimits {
        BodyLimits {
            max_compressed: self.full_upload_max_compressed(),
            max_uncompressed: self.full_upload_max_uncompressed(),
            max_items: None,
            timeout: self.body_timeout(),
            budget: None,
        }
    }
}

/// The caps of one endpoint family's request bodies, built by [`Limits`] and applied by
/// `crate::transport`.
#[derive(Clone, Debug)]
pub struct BodyLimits {
    pub max_compressed: u64,
    pub max_uncompressed: u64,
    /// Cap on JSON items (see `transport::body::JsonItems`); `None` for bodies that are not JSON.
    pub max_items: Option<u64>,
    /// In-memory bodies must arrive whole within this; spooled bodies may pause this long
    /// between two pieces.
    pub timeout: Duration,
    /// Memory shared by every in-memory body, in permits of `BUDGET_UNIT` bytes.
    pub budget: Option<Arc<Semaphore>>,
}

impl BodyLimits {
    /// Caps on both sizes only: no item count, no shared budget, a 60 s timeout.
    pub fn sizes(max_compressed: u64, max_uncompressed: u64) -> Self {
        Self {
            max_compressed,
            max_uncompressed,
            max_items: None,
            timeout: Duration::from_secs(60),
            budget: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        limits: Limits,
    }

    #[test]
    fn defaults_separate_the_families() {
        let limits = Cli::parse_from(["test"]).limits;
        assert_eq!(limits.login_body().max_uncompressed, 64 * 1024);
        assert_eq!(limits.json_body().max_uncompressed, 32 * MIB);
        assert_eq!(limits.media_body().max_uncompressed, 128 * MIB);
        assert_eq!(limits.full_upload_body().max_uncompressed, 300 * MIB);
        assert_eq!(limits.full_upload_body().max_compressed, 100 * MIB);
        assert!(limits.login_body().max_items.unwrap() <= 64 * 1024);
    }

    #[test]
    fn a_core_is_left_to_the_blocking_pool_unless_set() {
        assert_eq!(default_worker_threads(1), 1);
        assert_eq!(default_worker_threads(2), 1);
        assert_eq!(default_worker_threads(16), 15);
        let set = Cli::parse_from(["test", "--worker-threads", "3"]).limits;
        assert_eq!(set.worker_threads(), 3);
        assert!(Cli::try_parse_from(["test", "--worker-threads", "0"]).is_err());
    }

    #[test]
    fn the_json_budget_is_shared_between_families() {
        let limits = Cli::parse_from(["test", "--json-memory-mb", "2"]).limits;
        let login = limits.login_body().budget.unwrap();
        let json = limits.json_body().budget.unwrap();
        assert!(Arc::ptr_eq(&login, &json));
        assert_eq!(json.available_permits(), 2048);
    }
}
