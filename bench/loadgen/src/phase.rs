//! A phase: `concurrency` workers, each with its own devices (one user's syncs never
//! overlap), run review syncs until the duration or the operation cap has passed; as
//! `load_bench.run_phase`.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::client::{Client, Codec};
use crate::job::{Device, Job, Outcome, Template};
use crate::review::review_sync;

/// The run stops after this many failed operations, and keeps this many messages.
pub const MAX_ERRORS: usize = 20;

struct Shared {
    client: Client,
    templates: Vec<Template>,
    deadline: Instant,
    /// Operations that may still start; a worker takes one before each operation.
    remaining: AtomicI64,
    error_count: AtomicU64,
    errors: Mutex<Vec<String>>,
}

struct WorkerResult {
    devices: Vec<Device>,
    latencies: Vec<f64>,
}

pub async fn run(job: Job) -> Result<Outcome, String> {
    let client = Client::new(&job.base_url).map_err(|e| format!("HTTP client: {e}"))?;
    let workers = job.concurrency.min(job.devices.len()).max(1);
    // devices[i::workers], as the Python driver groups them.
    let mut groups: Vec<Vec<Device>> = (0..workers).map(|_| Vec::new()).collect();
    for (index, device) in job.devices.into_iter().enumerate() {
        groups[index % workers].push(device);
    }
    let started = Instant::now();
    let shared = Arc::new(Shared {
        client,
        templates: job.templates,
        deadline: started + Duration::from_secs_f64(job.duration),
        remaining: AtomicI64::new(i64::try_from(job.max_ops).unwrap_or(i64::MAX)),
        error_count: AtomicU64::new(0),
        errors: Mutex::new(Vec::new()),
    });
    let mut tasks = JoinSet::new();
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        tasks.spawn(worker(shared.clone(), group));
    }
    let mut devices = Vec::new();
    let mut latencies = Vec::new();
    while let Some(result) = tasks.join_next().await {
        let result = result.map_err(|e| format!("a worker failed: {e}"))??;
        devices.extend(result.devices);
        latencies.extend(result.latencies);
    }
    let wall = started.elapsed().as_secs_f64();
    let errors = std::mem::take(&mut *shared.errors.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Outcome {
        ops: latencies.len() as u64,
        errors,
        error_count: shared.error_count.load(Ordering::Relaxed),
        latencies,
        wall,
        devices,
    })
}

async fn worker(shared: Arc<Shared>, mut mine: Vec<Device>) -> Result<WorkerResult, String> {
    let mut codec = Codec::new().map_err(|e| format!("zstd: {e}"))?;
    let mut latencies = Vec::new();
    let mut turn = 0;
    while Instant::now() < shared.deadline && shared.remaining.fetch_sub(1, Ordering::Relaxed) > 0 {
        let index = turn % mine.len();
        let dev = &mut mine[index];
        turn += 1;
        let template = &shared.templates[dev.template];
        let t0 = Instant::now();
        match review_sync(&shared.client, &mut codec, dev, template).await {
            Ok(()) => latencies.push(t0.elapsed().as_secs_f64()),
            Err(failure) => {
                let count = shared.error_count.fetch_add(1, Ordering::Relaxed) + 1;
                {
                    let mut errors = shared.errors.lock().unwrap_or_else(|p| p.into_inner());
                    if errors.len() < MAX_ERRORS {
                        errors.push(format!("{}: {failure}", dev.user));
                    }
                }
                if count >= MAX_ERRORS as u64 {
                    shared.remaining.store(0, Ordering::Relaxed);
                }
                // Resynchronise the expectations with the server before going on.
                dev.usn = -1;
            }
        }
    }
    Ok(WorkerResult {
        devices: mine,
        latencies,
    })
}
