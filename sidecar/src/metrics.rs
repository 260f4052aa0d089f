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
            let mut builder = builder()?;
            if let Some(node) = NODE.get() {
                builder = builder.add_global_label("node", node);
            }
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

/// The exporter's settings (but the `node` label).
fn builder() -> Option<PrometheusBuilder> {
    PrometheusBuilder::new()
        .set_buckets(&[
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
        ])
        .ok()
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

/// The route labels, one per index: `3 * i` is route `i` under `/sync/`, `3 * i + 1` under
/// `/msync/`, `3 * i + 2` elsewhere, and [`OTHER_ROUTE`] everything else.
const ROUTE_LABELS: usize = ROUTES.len() * 3 + 1;
const OTHER_ROUTE: usize = ROUTE_LABELS - 1;

/// The index of a path's route label (see [`ROUTE_LABELS`]).
fn route_index(path: &str) -> usize {
    let tail = path.rsplit('/').next().unwrap_or_default();
    let Some(route) = ROUTES.iter().position(|(segment, ..)| *segment == tail) else {
        return OTHER_ROUTE;
    };
    if path.contains("/msync/") {
        3 * route + 1
    } else if path.contains("/sync/") {
        3 * route
    } else {
        3 * route + 2
    }
}

fn route_label_at(index: usize) -> &'static str {
    let Some(&(_, sync, msync, bare)) = ROUTES.get(index / 3) else {
        return "other";
    };
    [sync, msync, bare][index % 3]
}

/// Routes are a fixed set, so their paths make bounded label values; anything else is
/// folded into one label to keep hostile URLs from creating series. The labels are static:
/// recording a request allocates none.
pub fn route_label(path: &str) -> &'static str {
    route_label_at(route_index(path))
}

/// The statuses the sidecar answers with, whose labels are literals.
const STATUSES: [(u16, &str); 12] = [
    (200, "200"),
    (204, "204"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (409, "409"),
    (413, "413"),
    (429, "429"),
    (500, "500"),
    (503, "503"),
];

fn status_index(status: u16) -> Option<usize> {
    STATUSES.iter().position(|&(code, _)| code == status)
}

/// The status as a label, without an allocation for the statuses the sidecar answers with.
fn status_label(status: u16) -> metrics::SharedString {
    match status_index(status) {
        Some(index) => STATUSES[index].1.into(),
        None => status.to_string().into(),
    }
}

fn requests_counter(route: &'static str, status: metrics::SharedString) -> metrics::Counter {
    metrics::counter!("sidecar_requests_total", "route" => route, "status" => status)
}

fn duration_histogram(route: &'static str) -> metrics::Histogram {
    metrics::histogram!("sidecar_request_duration_seconds", "route" => route)
}

/// Records one request by looking its series up in the recorder, as every request did before
/// [`RequestSeries`]: used until the recorder is installed.
fn record_uncached(route: &'static str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
    requests_counter(route, status_label(status)).increment(1);
    duration_histogram(route).record(seconds);
    metrics::counter!("sidecar_request_bytes_total").increment(bytes_in);
    metrics::counter!("sidecar_response_bytes_total").increment(bytes_out);
}

/// The handles of the per-request series, each registered with the recorder on its first use
/// and kept: building a labelled key and looking it up in the registry cost more than the
/// increment. A series is registered exactly when the uncached path would first create it, so
/// the exported text is the same. Statuses outside [`STATUSES`] are looked up every time.
/// (The Prometheus recorder keeps every series for good: no idle timeout is set, which would
/// drop series that kept handles still point to.)
struct RequestSeries {
    requests: [[OnceLock<metrics::Counter>; STATUSES.len()]; ROUTE_LABELS],
    durations: [OnceLock<metrics::Histogram>; ROUTE_LABELS],
    bytes_in: OnceLock<metrics::Counter>,
    bytes_out: OnceLock<metrics::Counter>,
}

impl RequestSeries {
    const fn new() -> Self {
        Self {
            requests: [const { [const { OnceLock::new() }; STATUSES.len()] }; ROUTE_LABELS],
            durations: [const { OnceLock::new() }; ROUTE_LABELS],
            bytes_in: OnceLock::new(),
            bytes_out: OnceLock::new(),
        }
    }

    fn record(&self, route: usize, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
        let label = route_label_at(route);
        match status_index(status) {
            Some(index) => self.requests[route][index]
                .get_or_init(|| requests_counter(label, STATUSES[index].1.into()))
                .increment(1),
            None => requests_counter(label, status_label(status)).increment(1),
        }
        self.durations[route]
            .get_or_init(|| duration_histogram(label))
            .record(seconds);
        self.bytes_in
            .get_or_init(|| metrics::counter!("sidecar_request_bytes_total"))
            .increment(bytes_in);
        self.bytes_out
            .get_or_init(|| metrics::counter!("sidecar_response_bytes_total"))
            .increment(bytes_out);
    }
}

static REQUEST_SERIES: RequestSeries = RequestSeries::new();

pub fn record_request(path: &str, status: u16, seconds: f64, bytes_in: u64, bytes_out: u64) {
    let route = route_index(path);
    // A handle belongs to the recorder installed when it was made: one made before ours is
    // installed (by [`handle`]) would count nowhere, for good. So handles are kept only once
    // ours is in place; until then (or if another recorder was installed first) every request
    // looks its series up.
    if matches!(HANDLE.get(), Some(Some(_))) {
        REQUEST_SERIES.record(route, status, seconds, bytes_in, bytes_out);
    } else {
        record_uncached(route_label_at(route), status, seconds, bytes_in, bytes_out);
    }
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

    /// What `record` exports, on a recorder of its own, line by line in order: the exporter
    /// lists the series of a metric in no fixed order.
    fn exported(record: impl FnOnce()) -> Vec<String> {
        let recorder = builder().unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, record);
        let mut lines: Vec<String> = handle.render().lines().map(str::to_string).collect();
        lines.sort_unstable();
        lines
    }

    const REQUESTS: [(&str, u16, f64, u64, u64); 9] = [
        ("/sync/meta", 200, 0.002, 120, 80),
        ("/sync/start", 200, 0.004, 90, 300),
        ("/sync/meta", 200, 0.001, 120, 80),
        ("/sync/start", 409, 0.003, 90, 40),
        ("/x/msync/begin", 200, 0.02, 0, 60),
        ("/sync/../../etc/passwd", 404, 0.0001, 0, 0),
        ("/sync/finish", 418, 0.5, 10, 0),
        ("/sync/finish", 418, 1.5, 10, 0),
        ("/health", 200, 0.0002, 0, 2),
    ];

    #[test]
    fn kept_handles_export_what_looking_series_up_does() {
        let looked_up = exported(|| {
            for (path, status, seconds, bytes_in, bytes_out) in REQUESTS {
                record_uncached(route_label(path), status, seconds, bytes_in, bytes_out);
            }
        });
        let kept = exported(|| {
            let series = Box::new(RequestSeries::new());
            for (path, status, seconds, bytes_in, bytes_out) in REQUESTS {
                series.record(route_index(path), status, seconds, bytes_in, bytes_out);
            }
        });
        for line in [
            r#"sidecar_requests_total{route="sync/meta",status="200"} 2"#,
            r#"sidecar_requests_total{route="sync/finish",status="418"} 2"#,
            r#"sidecar_request_duration_seconds_count{route="sync/start"} 2"#,
            "sidecar_request_bytes_total 440",
            "sidecar_response_bytes_total 562",
        ] {
            assert!(kept.iter().any(|kept| kept == line), "{line}: {kept:#?}");
        }
        assert_eq!(kept, looked_up);
    }

    #[test]
    fn requests_are_counted_once_the_recorder_is_installed() {
        fn value(text: &str, series: &str) -> f64 {
            let line = text.lines().find(|line| {
                line.starts_with(series.split('{').next().unwrap()) && {
                    let labels = &series[series.find('{').unwrap() + 1..series.len() - 1];
                    labels.split(',').all(|label| line.contains(label))
                }
            });
            line.map_or(0.0, |line| {
                line.rsplit(' ').next().unwrap().parse().unwrap()
            })
        }
        let handle = handle().expect("the recorder is installed");
        // A route no other test asks for, with a kept status and one looked up every time.
        let counted = r#"sidecar_requests_total{route="msync/host-keys",status="409"}"#;
        let other = r#"sidecar_requests_total{route="msync/host-keys",status="418"}"#;
        let durations = r#"sidecar_request_duration_seconds_count{route="msync/host-keys"}"#;
        let before = handle.render();
        for _ in 0..3 {
            record_request("/x/msync/host-keys", 409, 0.01, 1, 1);
        }
        record_request("/x/msync/host-keys", 418, 0.01, 1, 1);
        let after = handle.render();
        assert_eq!(
            value(&after, counted) - value(&before, counted),
            3.0,
            "{after}"
        );
        assert_eq!(value(&after, other) - value(&before, other), 1.0, "{after}");
        assert_eq!(value(&after, durations) - value(&before, durations), 4.0);
    }

    #[test]
    fn route_indexes_name_their_labels() {
        let mut labels: Vec<_> = (0..ROUTE_LABELS).map(route_label_at).collect();
        assert_eq!(labels[OTHER_ROUTE], "other");
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), ROUTE_LABELS, "every index its own label");
        assert_eq!(route_index("/nope"), OTHER_ROUTE);
    }
}
