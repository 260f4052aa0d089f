//! The `anki-sidecar` command.

use anki_sidecar::cli_import::{self, ImportArgs};
use anki_sidecar::config::Settings;
use anki_sidecar::server;
use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// jemalloc as Rust's allocator: about 4% less CPU per review sync than glibc's, by the A/B
/// runs of docs/performance.md ("jemalloc, with its address space given back").
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read at its start. `retain:false` gives freed address space back to
/// the kernel: jemalloc's default keeps it reserved for reuse, and under the 512 MB
/// address-space limit that docs/operations.md supports, an allocation of 32 MiB then failed.
#[unsafe(export_name = "_rjem_malloc_conf")]
static JEMALLOC_OPTIONS: JemallocOptions = JemallocOptions(c"retain:false".as_ptr());

/// A C string pointer that may live in a static: it points at a literal, never written.
#[repr(transparent)]
struct JemallocOptions(*const std::ffi::c_char);

// SAFETY: the pointer is to a string literal, which is immutable and lives forever.
unsafe impl Sync for JemallocOptions {}

#[derive(Parser)]
#[command(
    name = "anki-sidecar",
    version,
    about = "Anki sync server for Django users"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sync server (the default).
    Serve,
    /// Import an .apkg into a user's collection through the running server's internal API.
    Import(ImportArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(cli.settings.limits.worker_threads())
        .max_blocking_threads(cli.settings.limits.blocking_threads.max(1))
        .build()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => runtime.block_on(serve(cli.settings)),
        Command::Import(args) => runtime.block_on(cli_import::run(
            args,
            cli.settings.internal_addr,
            cli.settings.internal_token.clone(),
        )),
    }
}

async fn serve(settings: Settings) -> anyhow::Result<()> {
    tracing::info!(?settings, "starting");
    match anki_sidecar::connections::raise_open_files_limit() {
        Some(open_files) => tracing::info!(open_files, "open-files limit"),
        None => tracing::warn!("could not read the open-files limit"),
    }
    let public = bind(settings.public_addr, "SIDECAR_PUBLIC_ADDR").await?;
    let internal = bind(settings.internal_addr, "SIDECAR_INTERNAL_ADDR").await?;
    let state = server::build_state(settings).await?;
    server::launch_with_listeners(state, public, internal, shutdown_signal()).await
}

/// Binds a listener; a failure names the address and the variable that chooses another.
async fn bind(
    addr: std::net::SocketAddr,
    variable: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}; choose another address with {variable}"))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        if let Ok(mut signal) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}
