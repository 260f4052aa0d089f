//! Prometheus metrics, served on the internal listener only (docs/design.md#observability).
//!
//! One recorder per process: tests start many servers in one process, so it is installed once
//! and shared.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static NODE: OnceLock<String> = OnceLock::new();

/// In cluster mode, every series carries `node="<SIDECAR_NODE_ID>"`; in single-process mode
/// there is no `node` label. Takes effect only before the recorder is installed (the first
/// [`handle`]), which is what a real process does; tests that start several nodes in one
/// process share one recorder and the first node's label.
pub fn set_node(node: Option<&str>) {
    if let Some(node) = node {
        let _ = NODE.set(node.to_string());
    }
}

/// Installs the global recorder on first use. Returns None if another recorder was installed
/// first (then metrics are simply not exported).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let mut builder = PrometheusBuilder::new();
            if let Some(node) = NODE.get() {
                builder = builder.add_global_label("node", node);
            }
            let recorder = builder
                .set_buckets(&[
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ])
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!(
        "sidecar_requests_total",
        "HTTP requests by route and status"
    );
    metrics::describe_histogram!(
        "sidecar_request_duration_seconds",
        "HTTP request duration by route"
    );
    metrics::describe_counter!("sidecar_request_bytes_total", "Request body bytes received");
    metrics::describe_counter!(
        "sidecar_response_bytes_total",
        "Response body bytes sent (uncompressed)"
    );
    metrics::describe_histogram!(
        "sidecar_sync_duration_seconds",
        "Duration of normal syncs, from start to their outcome"
    );
    metrics::describe_counter!("sidecar_sync_outcomes_total", "Normal sync outcomes");
    metrics::describe_gauge!("sidecar_active_sync_sessions", "Normal syncs in progress");
    metrics::describe_counter!("sidecar_login_failures_total", "Failed logins by reason");
    metrics::describe_counter!("sidecar_imports_total", "Server-side imports by result");
    // store: recovery of damaged per-user files.
    metrics::describe_counter!(
        "sidecar_storage_recoveries_total",
        "Per-user files found missing, empty or damaged and rebuilt or replaced, by file"
    );
}

/// The labels of a route's last path segment: (segment, label under `/sync/`, label under
/// `/msync/`, label elsewhere).
macro_rules! route {
    ($segment:literal) => {
        (
            $segment,
            concat!("sync/", $segment),
            concat!("msync/", $segment),
            $segment,
        )
    };
}

/// The routes with their own label, by last path segment.
const ROUTES: [(&str, &str, &str, &str); 21] = [
    route!("hostKey"),
    route!("meta"),
    route!("start"),
    route!("applyGraves"),
    route!("applyChanges"),
    route!("chunk"),
    route!("applyChunk"),
    route!("sanityCheck2"),
    route!("finish"),
    route!("abort"),
    route!("upload"),
    route!("download"),
    route!("begin"),
    route!("mediaChanges"),
    route!("uploadChanges"),
    route!("downloadFiles"),
    route!("mediaSanity"),
    route!("health"),
    route!("metrics"),
    route!("imports"),
    route!("host-keys"),
];

/// Routes are a fixed set, so their paths make bounded label values; anything else is
/// folded into one label to keep hostile URLs from creating series. The labels are static:
/// recording a request allocates none.
pub fn route_label(path: &str) -> &'static str {
    let tail = path.rsplit('/').next().unwrap_or_default();
    let Some(&(_, sync, msync, bare)) = ROUTES.iter().find(|(segment, ..)| *segment == tail) else {
        return "other";
    };
    if path.contains("/msync/") {
        msync
    } else if path.contains("/sync/") {
        sync
    } else {
        bare
    }
}

/// The status as a label, without an allocation for the statuses the sidecar answers with.
fn status_label(status: u16) -> metrics::SharedString {
    let known = match status {
        200 => "200",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => return status.to_string().into(),
    };
    known.into()
}

pub fn record_request(path: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
    let route = route_label(path);
    metrics::counter!("sidecar_requests_total", "route" => route, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("sidecar_request_duration_seconds", "route" => route).record(seconds);
    metrics::counter!("sidecar_request_bytes_total").increment(bytes_in);
    metrics::counter!("sidecar_response_bytes_total").increment(bytes_out);
}

pub fn sync_outcome(outcome: &str, seconds: f64) {
    metrics::counter!("sidecar_sync_outcomes_total", "outcome" => outcome.to_string()).increment(1);
    metrics::histogram!("sidecar_sync_duration_seconds").record(seconds);
}

pub fn session_started() {
    metrics::gauge!("sidecar_active_sync_sessions").increment(1.0);
}

pub fn session_ended() {
    metrics::gauge!("sidecar_active_sync_sessions").decrement(1.0);
}

pub fn login_failure(reason: &'static str) {
    metrics::counter!("sidecar_login_failures_total", "reason" => reason).increment(1);
}

pub fn import_result(result: &'static str) {
    metrics::counter!("sidecar_imports_total", "result" => result).increment(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_labels_are_bounded() {
        for (path, label) in [
            ("/sync/meta", "sync/meta"),
            ("/anki/msync/begin", "msync/begin"),
            ("/sync/../../etc/passwd", "other"),
            ("/health", "health"),
        ] {
            assert_eq!(route_label(path), label, "{path}");
        }
    }

    #[test]
    fn every_route_is_labelled_by_its_prefix_and_segment() {
        for (segment, ..) in ROUTES {
            assert_eq!(
                route_label(&format!("/sync/{segment}")),
                format!("sync/{segment}")
            );
            assert_eq!(
                route_label(&format!("/x/msync/{segment}")),
                format!("msync/{segment}")
            );
            assert_eq!(route_label(&format!("/internal/{segment}")), segment);
        }
    }

    #[test]
    fn status_labels_are_the_codes() {
        for status in [200, 400, 409, 418, 503, 599] {
            assert_eq!(&*status_label(status), status.to_string());
        }
    }
}
