//! One log line and one set of metrics per HTTP request, on both listeners.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;

/// Set by the auth extractor so the request log line can name the user.
#[derive(Clone, Default)]
pub struct RequestUser(pub Arc<OnceLock<i64>>);

/// The response header naming the node that answered, in cluster mode.
pub const NODE_HEADER: &str = "x-sidecar-node";

/// One line per request: user, method, status, bytes in and out, milliseconds, and in cluster
/// mode the node, which every response also names in `X-Sidecar-Node`
/// (docs/design.md#observability).
pub async fn log_request(
    State(state): State<crate::state::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let node = state.settings.node_id.as_deref();
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
    let mut response = next.run(Request::from_parts(parts, body)).await;
    if let Some(value) = node.and_then(|node| HeaderValue::from_str(node).ok()) {
        response.headers_mut().insert(NODE_HEADER, value);
    }
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
    let status = response.status();
    macro_rules! request_line {
        ($level:ident) => {
            tracing::$level!(
                target: "sidecar::request",
                path = %path,
                status = status.as_u16(),
                user_id = user.0.get().copied(),
                node = node.map(tracing::field::display),
                bytes_in,
                bytes_out,
                uncompressed_out,
                ms = elapsed.as_millis() as u64,
                "request"
            )
        };
    }
    if summarised_by_its_sync(&path, status) {
        request_line!(debug);
    } else {
        request_line!(info);
    }
    response
}

/// The calls of an open normal sync, `start` to `finish`: the sync's own line
/// (`sidecar::sync`, written when it ends) reports them together, and the metrics time each.
const SESSION_CALLS: [&str; 7] = [
    "sync/start",
    "sync/applyGraves",
    "sync/applyChanges",
    "sync/chunk",
    "sync/applyChunk",
    "sync/sanityCheck2",
    "sync/finish",
];

/// Whether a request's line is at debug level rather than info: a call of a normal sync that
/// succeeded, which the sync's line covers (docs/operations.md, "Logs and metrics"). Six of the seven
/// requests of a small sync, so the log keeps two lines per sync (its `meta` and its outcome)
/// instead of eight, and the sidecar saves the formatting and the write of the other six
/// (about 2% of a review sync's CPU, docs/performance.md). A failed call, `meta`, and every
/// other request stay at info; `RUST_LOG=info,sidecar::request=debug` shows them all.
fn summarised_by_its_sync(path: &str, status: axum::http::StatusCode) -> bool {
    status.is_success() && SESSION_CALLS.contains(&crate::metrics::route_label(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::routing::get;

    /// A router answering `GET /x` behind `log_request`, with `node` as the configured node
    /// (set directly: starting in cluster mode needs PostgreSQL, which this test does not).
    async fn serve(node: Option<&str>) -> (String, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db_path = dir.path().join("db.sqlite3");
        rusqlite::Connection::open(&db_path)
            .unwrap()
            .execute_batch(
                "CREATE TABLE auth_user (id integer PRIMARY KEY, password text, username text, \
                 is_active bool)",
            )
            .unwrap();
        let mut settings = crate::config::Settings::from_args([
            format!("--database-url=sqlite:///{}", db_path.display()),
            format!("--data-dir={}", dir.path().join("data").display()),
        ]);
        settings.node_id = node.map(str::to_string);
        let users = crate::db::UserTable::from_settings(&settings.user_table).unwrap();
        let db = crate::db::Database::connect(&settings.resolved_database_url().unwrap(), users)
            .await
            .unwrap();
        let data = crate::storage::DataDir::new(&settings.data_dir).unwrap();
        let settings = Arc::new(settings);
        let state = crate::state::AppState {
            users: crate::user_data::Users::new(data.clone(), settings.clone(), None),
            settings,
            db,
            data,
        };
        let app = Router::new()
            .route("/x", get(|| async { "x" }))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                log_request,
            ))
            .with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/x", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, dir)
    }

    #[test]
    fn only_the_successful_calls_of_a_normal_sync_are_left_to_its_line() {
        use axum::http::StatusCode;
        let ok = StatusCode::OK;
        for call in [
            "start",
            "applyGraves",
            "applyChanges",
            "chunk",
            "applyChunk",
            "sanityCheck2",
            "finish",
        ] {
            assert!(
                summarised_by_its_sync(&format!("/sync/{call}"), ok),
                "{call}"
            );
            // Under a base path too.
            assert!(summarised_by_its_sync(&format!("/anki/sync/{call}"), ok));
            // A failed call has its own line.
            for failed in [StatusCode::BAD_REQUEST, StatusCode::INTERNAL_SERVER_ERROR] {
                assert!(!summarised_by_its_sync(&format!("/sync/{call}"), failed));
            }
        }
        for path in [
            "/sync/meta",
            "/sync/hostKey",
            "/sync/upload",
            "/sync/download",
            "/sync/abort",
            "/msync/begin",
            "/msync/uploadChanges",
            "/health",
            "/internal/v1/users/1/imports",
            "/finish",
        ] {
            assert!(!summarised_by_its_sync(path, ok), "{path}");
        }
    }

    #[tokio::test]
    async fn a_cluster_node_names_itself_in_every_response() {
        let (url, _dir) = serve(Some("node-7")).await;
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.headers()[NODE_HEADER], "node-7");
    }

    #[tokio::test]
    async fn a_single_process_adds_no_node_header() {
        let (url, _dir) = serve(None).await;
        let response = reqwest::get(url).await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.headers().get(NODE_HEADER).is_none());
    }
}
