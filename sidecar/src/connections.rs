//! Our own accept loop over hyper, so that connections have timeouts and a cap.
//!
//! - At most `max_connections` connections per listener are open; the next client waits in
//!   the kernel's accept queue until one closes. `accept` therefore never runs out of file
//!   descriptors, and a failed `accept` only pauses the loop briefly.
//! - The request line and headers must arrive within the header timeout (hyper's own timer).
//! - A connection with no request in progress and no traffic for the idle timeout is closed:
//!   sockets that never send anything, and keep-alive connections left open.
//! - Bodies have their own timeouts, enforced while reading them (`transport::body`).
//!
//! See docs/operations.md, "Limits".

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tower::Service;

/// File descriptors kept free for the database, the collections and media files of running
/// requests, and temporary files.
const RESERVED_FDS: u64 = 128;

/// Descriptors one user's connections kept between requests hold: the collection, its log
/// and its index, and `media.db`.
const FDS_PER_KEPT: u64 = 4;

#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Raises the soft open-files limit to the hard limit; returns the resulting soft limit.
#[cfg(unix)]
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
pub fn raise_open_files_limit() -> Option<u64> {
    // SAFETY: getrlimit and setrlimit only read and write the struct we pass.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
        Some(limit.rlim_cur as u64)
    }
}

#[cfg(not(unix))]
pub fn raise_open_files_limit() -> Option<u64> {
    None
}

/// The current soft open-files limit.
#[allow(clippy::unnecessary_cast)] // rlim_t is not u64 on every platform
fn open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: getrlimit only writes the struct we pass.
        unsafe {
            let mut limit = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                return Some(limit.rlim_cur as u64);
            }
        }
    }
    None
}

/// The connection cap per listener, lowered so that `listeners` listeners at their cap still
/// leave `RESERVED_FDS` descriptors free plus those of the collection and `media.db`
/// connections kept between requests. Those get at most a quarter of what is left after the
/// reserve (and at most `collection::cached::MAX_OPEN`), so a low open-files limit lowers their
/// cap rather than starving the listeners.
pub fn fit_to_open_files(max_connections: usize, listeners: u64) -> usize {
    let Some(open_files) = open_files_limit() else {
        return max_connections;
    };
    let budget = FdBudget::of(open_files, listeners);
    crate::collection::cached::limit_kept(budget.kept);
    crate::media::cached::limit_kept(budget.kept);
    let fitted = (max_connections as u64).min(budget.per_listener).max(1) as usize;
    if fitted < max_connections {
        tracing::warn!(
            open_files,
            configured = max_connections,
            used = fitted,
            kept_connections = budget.kept,
            "SIDECAR_MAX_CONNECTIONS lowered to fit under the open-files limit"
        );
    }
    fitted
}

/// How an open-files limit is shared out.
#[derive(Debug, PartialEq, Eq)]
struct FdBudget {
    /// Collection connections that may be kept open between requests.
    kept: usize,
    /// Connections each listener may hold open.
    per_listener: u64,
}

impl FdBudget {
    fn of(open_files: u64, listeners: u64) -> Self {
        let room = open_files.saturating_sub(RESERVED_FDS);
        let kept = (room / 4 / FDS_PER_KEPT).min(crate::collection::cached::MAX_OPEN as u64);
        let per_listener = room.saturating_sub(kept * FDS_PER_KEPT) / listeners.max(1);
        Self {
            kept: kept as usize,
            per_listener,
        }
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open requests finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("never closed"),
            _ = stopped(&mut stop) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of descriptors or a connection reset before accept: pause, go on.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stopped(&mut stop) => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            serve_connection(stream, peer, router, limits, stop).await;
            drop(slot);
        });
    }
    // Every connection task gives its slot back when it ends.
    let _ = slots
        .acquire_many(limits.max_connections.max(1) as u32)
        .await;
}

/// Resolves once the server is stopping. (The guard `wait_for` returns is not `Send`, so it
/// must not outlive this function.)
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

/// When a connection last moved bytes, and how many of its requests are being handled.
struct Activity {
    started: Instant,
    last_io_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            started: Instant::now(),
            last_io_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let now = self.started.elapsed().as_millis() as u64;
        self.last_io_ms.store(now, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_io_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(last)
    }
}

struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        Self(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Resolves once the connection has been idle (no request in progress, no bytes moved) for
/// `idle`.
async fn idle_expired(activity: &Activity, idle: Duration) {
    loop {
        let quiet = activity.idle_for();
        let busy = activity.in_flight.load(Ordering::Relaxed) > 0;
        if !busy && quiet >= idle {
            return;
        }
        let wait = if busy { idle } else { idle - quiet };
        tokio::time::sleep(wait.max(Duration::from_millis(10))).await;
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: ConnectionLimits,
    mut stop: watch::Receiver<bool>,
) {
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(CountingIo {
        inner: stream,
        activity: activity.clone(),
    });
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        let in_flight = InFlight::begin(&requests);
        request.extensions_mut().insert(ConnectInfo(peer));
        let mut router = router.clone();
        async move {
            let response = router.call(request).await;
            drop(in_flight);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%peer, error = %err, "connection ended with an error");
                }
                break;
            }
            _ = idle_expired(&activity, limits.idle_timeout) => {
                tracing::debug!(%peer, "closing an idle connection");
                break;
            }
            _ = stopped(&mut stop), if !stopping => {
                connection.as_mut().graceful_shutdown();
                stopping = true;
            }
        }
    }
}

/// The socket, noting every byte that moves in either direction.
struct CountingIo {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for CountingIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for CountingIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::FdBudget;

    /// A low limit (256 in the idle-socket test) must leave the listeners most of it: with
    /// 64 kept connections reserved up front, 256 descriptors left room for one connection.
    #[test]
    fn a_low_open_files_limit_lowers_the_kept_connections_not_the_listeners() {
        let budget = FdBudget::of(256, 2);
        assert_eq!(budget.kept, 8);
        assert_eq!(budget.per_listener, 48);
    }

    #[test]
    fn a_common_limit_keeps_the_full_cap_of_kept_connections() {
        let budget = FdBudget::of(2048, 2);
        assert_eq!(budget.kept, crate::collection::cached::MAX_OPEN);
        assert_eq!(budget.per_listener, (2048 - 128 - 4 * 64) / 2);
    }

    #[test]
    fn a_limit_below_the_reserve_still_allows_one_connection_and_keeps_nothing() {
        let budget = FdBudget::of(100, 2);
        assert_eq!(budget.kept, 0);
        assert_eq!(budget.per_listener, 0);
    }
}
