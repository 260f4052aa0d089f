//! The load driver of `bench/load_bench.py` for its review-sync phases.
//!
//! The Python benchmark spends 2 to 3 ms of CPU per review sync on its own client (seven
//! requests, zstd, JSON), on the same cores as the servers it measures. This binary performs
//! the same operation, with the same checks on every answer, for a fraction of that. It reads
//! one JSON job on stdin (server, concurrency, duration, the devices and their collections'
//! templates; see `job.rs`) and writes one JSON outcome on stdout: ops, wrong answers,
//! latencies, wall time and each device's state after the phase.

mod client;
mod job;
mod phase;
mod review;

use std::io::{Read, Write};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut input = String::new();
    if let Err(error) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("anki-loadgen: reading the job from stdin: {error}");
        return ExitCode::from(2);
    }
    let job = match job::Job::parse(&input) {
        Ok(job) => job,
        Err(error) => {
            eprintln!("anki-loadgen: invalid job: {error}");
            return ExitCode::from(2);
        }
    };
    // One worker thread: the driver shares the machine with the servers it measures, and one
    // thread is plenty for the I/O of a few hundred syncs per second.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("anki-loadgen: starting the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = match runtime.block_on(phase::run(job)) {
        Ok(outcome) => outcome,
        Err(error) => {
            eprintln!("anki-loadgen: {error}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let written = serde_json::to_writer(&mut stdout, &outcome)
        .map_err(std::io::Error::from)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(error) = written {
        eprintln!("anki-loadgen: writing the outcome: {error}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
