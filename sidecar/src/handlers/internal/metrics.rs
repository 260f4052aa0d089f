//! `GET /metrics`: Prometheus text format, on the internal listener only.

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

pub async fn metrics() -> impl IntoResponse {
    match crate::metrics::handle() {
        Some(handle) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            handle.render(),
        ),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "metrics recorder unavailable\n".to_string(),
        ),
    }
}
