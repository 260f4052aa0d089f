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
    tracing::info!(
        target: "sidecar::request",
        path = %path,
        status = response.status().as_u16(),
        user_id = user.0.get().copied(),
        node = node.map(tracing::field::display),
        bytes_in,
        bytes_out,
        uncompressed_out,
        ms = elapsed.as_millis() as u64,
        "request"
    );
    response
}
