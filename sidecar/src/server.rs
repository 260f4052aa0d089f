//! Building the routers and running both listeners.

use std::sync::Arc;

use anyhow::Context;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::get;
use tokio::net::TcpListener;
use tower::ServiceBuilder;

use crate::config::Settings;
use crate::connections::{self, ConnectionLimits};
use crate::db::{Database, UserTable};
use crate::handlers;
use crate::state::AppState;
use crate::storage::DataDir;
use crate::user_data::Users;
use crate::user_data::cluster::ClusterLocks;

/// Connects to the database, runs migrations and prepares the data folder.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
    // Before any connection opens: the logs' frames then take one write each. Without it the
    // sidecar works as before, only with more system calls.
    if let Err(err) = crate::collection::wal_writes::install() {
        tracing::warn!(error = %format!("{err:#}"), "WAL writes are not joined");
    }
    // Checked before connecting, so a refusal is one plain line.
    let node = crate::config::cluster_node(
        settings.node_id.as_deref(),
        settings.resolved_database_url().as_deref(),
    )
    .map_err(anyhow::Error::msg)?;
    let url = settings.resolved_database_url().context(
        "no database configured: set SIDECAR_DATABASE_URL or DATABASE_URL to Django's database",
    )?;
    let users = UserTable::from_settings(&settings.user_table)?;
    let db = Database::connect(&url, users).await?;
    let data = DataDir::new(&settings.data_dir).with_context(|| {
        format!(
            "cannot create the data folder {}",
            settings.data_dir.display()
        )
    })?;
    let max_age = std::time::Duration::from_secs(settings.temp_cleanup_age_secs);
    let root = data.root().to_path_buf();
    let report = tokio::task::spawn_blocking(move || {
        crate::storage::cleanup::remove_stale_temp_files(&root, max_age)
    })
    .await?;
    tracing::info!(
        files = report.files,
        bytes = report.bytes,
        max_age_secs = max_age.as_secs(),
        "removed stale temporary files"
    );
    crate::fault::arm(settings.fault_point.clone());
    let cluster = match node {
        Some(node) => {
            // Stored collections stay out of WAL mode on shared storage (docs/design.md#cluster-mode).
            crate::collection::sqlite::set_shared_storage(true);
            tracing::info!(node = %node, "cluster mode");
            Some(ClusterLocks::connect(&url, node, settings.cluster_lock_connections).await?)
        }
        None => None,
    };
    let settings = Arc::new(settings);
    Ok(AppState {
        users: Users::new(data.clone(), settings.clone(), cluster),
        settings,
        db,
        data,
    })
}

/// The public tree: `/sync/*`, `/msync/*` and `/health`, under the configured base path.
///
/// The request log, the body limit and the legacy decoding wrap the whole tree once, as
/// plain layers around it. `Router::layer` would wrap every route in its own boxed service
/// instead, and each such layer adds a boxing, a clone and a future to every request
/// (docs/performance.md, "The middleware around the whole tree").
pub fn public_router(state: AppState) -> Router {
    let base = state.settings.normalized_base_path();
    let sync = Router::new()
        .nest("/sync", handlers::sync::router())
        .nest("/msync", handlers::msync::router());
    let mut app = Router::new().route("/health", get(handlers::health::health));
    if base.is_empty() {
        app = app.merge(sync);
    } else {
        app = app
            .nest(&base, sync)
            .route(&format!("{base}/health"), get(handlers::health::health));
    }
    let app = ServiceBuilder::new()
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::request_log::log_request,
        ))
        // Sync bodies are chunked and can be hundreds of MiB; the transport layer enforces
        // our own caps while streaming, so axum's 2 MB default must not apply.
        .layer(DefaultBodyLimit::disable())
        // Legacy (multipart, sync v8–10) requests under `/sync` and `/msync` are decoded into
        // v11-shaped ones first.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::transport::legacy::decode_legacy,
        ))
        .service(app.with_state(state));
    Router::new().fallback_service(app)
}

/// The internal tree, on its own listener.
pub fn internal_router(state: AppState) -> Router {
    handlers::internal::router(state.clone())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::request_log::log_request,
        ))
        .with_state(state)
}

/// Serves both listeners until `shutdown` resolves. Tests bind port 0 and pass the listeners.
pub async fn launch_with_listeners(
    state: AppState,
    public: TcpListener,
    internal: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let public_addr = public.local_addr()?;
    let internal_addr = internal.local_addr()?;
    tracing::info!("listening public={public_addr} internal={internal_addr}");

    let (stop_sender, stop_receiver) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_sender.send(true);
    });

    state
        .users
        .spawn_idle_expiry(std::time::Duration::from_secs(
            state.settings.sync_idle_timeout_secs,
        ));
    state.users.spawn_cluster_listener();
    crate::auth::revocation::spawn_sweeper(state.clone());
    crate::metrics::set_node(state.settings.node_id.as_deref());
    crate::metrics::handle();

    let limits = &state.settings.limits;
    let connection_limits = ConnectionLimits {
        max_connections: connections::fit_to_open_files(limits.max_connections, 2),
        header_timeout: limits.header_timeout(),
        idle_timeout: limits.idle_timeout(),
    };
    let public_server = connections::serve(
        public,
        public_router(state.clone()),
        connection_limits,
        stop_receiver.clone(),
    );
    let internal_server = connections::serve(
        internal,
        internal_router(state),
        connection_limits,
        stop_receiver,
    );
    tokio::join!(public_server, internal_server);
    Ok(())
}
