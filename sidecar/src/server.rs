//! Building the routers and running both listeners.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use anyhow::Context;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use futures_util::StreamExt;
use tokio::net::TcpListener;

use crate::config::Settings;
use crate::connections::{self, ConnectionLimits};
use crate::db::{Database, UserTable};
use crate::handlers;
use crate::registry::Registry;
use crate::state::AppState;
use crate::storage::DataDir;

/// Connects to the database, runs migrations and prepares the data folder.
pub async fn build_state(settings: Settings) -> anyhow::Result<AppState> {
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
    Ok(AppState {
        settings: Arc::new(settings),
        db,
        data,
        registry: Arc::new(Registry::default()),
    })
}

/// The public tree: `/sync/*`, `/msync/*` and `/health`, under the configured base path.
pub fn public_router(state: AppState) -> Router {
    let base = state.settings.normalized_base_path();
    // Sync bodies are chunked and can be hundreds of MiB; the transport layer enforces our
    // own caps while streaming, so axum's 2 MB default must not apply.
    // Legacy (multipart, sync v8–10) requests are decoded into v11-shaped ones first.
    let sync = Router::new()
        .nest("/sync", handlers::sync::router())
        .nest("/msync", handlers::msync::router())
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::transport::legacy::decode_legacy,
        ));
    let mut app = Router::new().route("/health", get(handlers::health::health));
    if base.is_empty() {
        app = app.merge(sync);
    } else {
        app = app
            .nest(&base, sync)
            .route(&format!("{base}/health"), get(handlers::health::health));
    }
    app.layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The internal tree, on its own listener.
pub fn internal_router(state: AppState) -> Router {
    handlers::internal::router(state.clone())
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Set by the auth extractor so the request log line can name the user.
#[derive(Clone, Default)]
pub struct RequestUser(pub Arc<OnceLock<i64>>);

/// One line per request: user, method, status, bytes in and out, milliseconds (design §8).
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let path = request.uri().path().to_string();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let user = RequestUser::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(user.clone());
    let counter = bytes_in.clone();
    let body = Body::from_stream(body.into_data_stream().inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    }));
    let response = next.run(Request::from_parts(parts, body)).await;
    let header_u64 = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    // Bytes on the wire when the body's length is known. A streamed body (a full download, a
    // media zip) has none; `anki-original-size` then gives its size before zstd compression.
    let bytes_out = header_u64("content-length");
    let uncompressed_out = header_u64(crate::transport::response::ORIGINAL_SIZE_HEADER);
    let bytes_in = bytes_in.load(Ordering::Relaxed);
    let elapsed = started.elapsed();
    crate::metrics::record_request(
        &path,
        response.status().as_u16(),
        elapsed.as_secs_f64(),
        bytes_in,
        bytes_out.or(uncompressed_out).unwrap_or(0),
    );
    tracing::info!(
        target: "sidecar::request",
        path = %path,
        status = response.status().as_u16(),
        user_id = user.0.get().copied(),
        bytes_in,
        bytes_out,
        uncompressed_out,
        ms = elapsed.as_millis() as u64,
        "request"
    );
    response
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

    crate::normal_sync::spawn_idle_expiry(state.clone());
    crate::auth::revocation::spawn_sweeper(state.clone());
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
