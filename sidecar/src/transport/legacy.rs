//! The legacy wire format of sync versions 8–10 (Anki 2.1.50–2.1.56, older AnkiDroid), on the
//! same paths as v11. See docs/legacy-protocol.md.
//!
//! This layer only decodes: a multipart request (or the media `begin` GET) becomes the same
//! request a v11 client would have sent: a [`SyncHeader`] in the request's extensions and the
//! `data` part as the body. The handlers and everything behind them are shared. The request's
//! [`Wire`] is kept in a task-local for the whole handler, so the body readers know to gunzip
//! (or take raw bytes) instead of zstd, and the answers go out plain instead of zstd.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::header::HEADER_NAME;
use super::{BodyLimits, SyncHeader};
use crate::error::ApiError;
use crate::state::AppState;

/// Legacy clients do not send their sync version on every request; the reference server
/// assumes 10 for all of them, and so do we. `meta` carries the real one in its body.
pub const LEGACY_SYNC_VERSION: u8 = 10;

/// Text parts (`c`, `k`, `sk`, `s`, `v`) are a few dozen bytes; anything longer is hostile.
const MAX_TEXT_PART: u64 = 1024;

/// A `data` part that outgrows this moves from memory to an unnamed temporary file, so a
/// large legacy upload is streamed to disk like a v11 one. The host key arrives after the
/// data, so this happens before the sender is known: memory must not be what it costs.
const SPILL_AT: usize = 256 * 1024;

/// How the current request's body is encoded, and how its answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `anki-sync` header, zstd both ways, `anki-original-size` on answers.
    V11,
    /// Multipart (or the `begin` GET): the `data` part gzip-compressed or raw; plain answers.
    Legacy { gzip: bool },
}

tokio::task_local! {
    static WIRE: Wire;
}

/// The wire of the request being handled (V11 outside a legacy request's task).
pub fn current_wire() -> Wire {
    WIRE.try_with(|wire| *wire).unwrap_or(Wire::V11)
}

/// Runs `future` as the handling of a request that arrived in the given wire format.
pub async fn with_wire<F: std::future::Future>(wire: Wire, future: F) -> F::Output {
    WIRE.scope(wire, future).await
}

/// The fields of a decoded legacy request.
#[derive(Debug, Default)]
pub struct LegacyParts {
    /// The `data` part, when it stayed under [`SPILL_AT`].
    pub data: Vec<u8>,
    /// The `data` part, when it outgrew [`SPILL_AT`]: an unnamed temporary file (a crash
    /// leaves nothing behind), positioned at its start.
    pub spilled: Option<std::fs::File>,
    pub gzip: bool,
    pub host_key: String,
    pub session_key: String,
    pub client_version: String,
}

impl LegacyParts {
    fn header(&self) -> SyncHeader {
        SyncHeader {
            version: LEGACY_SYNC_VERSION,
            host_key: self.host_key.clone(),
            client_version: if self.client_version.is_empty() {
                "legacy".into()
            } else {
                self.client_version.clone()
            },
            session_key: self.session_key.clone(),
        }
    }
}

fn is_multipart(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .trim_start()
                .to_ascii_lowercase()
                .starts_with("multipart/form-data")
        })
}

/// Whether `path` is under `/sync` or `/msync` (after the base path, if any): the trees the
/// legacy protocol uses.
fn is_sync_path(path: &str) -> bool {
    ["/sync", "/msync"].iter().any(|tree| {
        path.match_indices(tree).any(|(at, _)| {
            let rest = &path[at + tree.len()..];
            rest.is_empty() || rest.starts_with('/')
        })
    })
}

fn is_media_begin_get(request: &Request) -> bool {
    request.method() == Method::GET && request.uri().path().ends_with("/msync/begin")
}

/// Middleware around the public tree, for requests under `/sync` and `/msync`. Requests with
/// the `anki-sync` header, requests elsewhere (`/health`, unknown paths), and requests that
/// are not legacy-shaped pass unchanged (the v11 path answers those).
pub async fn decode_legacy(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if request.headers().contains_key(HEADER_NAME) || !is_sync_path(request.uri().path()) {
        return next.run(request).await;
    }
    if is_media_begin_get(&request) {
        return match begin_query(request.uri().query().unwrap_or("")) {
            Ok(parts) => run_decoded(request, parts, next).await,
            Err(err) => err.into_response(),
        };
    }
    if !is_multipart(&request) {
        return next.run(request).await;
    }
    let limits = part_limits(&state, request.uri().path());
    let (head, body) = request.into_parts();
    let spill_dir = state.data.root().join("users");
    match read_multipart(&head.headers, body, limits, &spill_dir).await {
        Ok(parts) => run_decoded(Request::from_parts(head, Body::empty()), parts, next).await,
        Err(err) => err.into_response(),
    }
}

/// The caps of the endpoint family a legacy request belongs to, as for v11: the `data` part
/// of a login gets the login cap, a full upload and a media upload their own, the rest the
/// JSON cap. The handler's reader applies the same family's caps again after decoding.
fn part_limits(state: &AppState, path: &str) -> BodyLimits {
    let limits = &state.settings.limits;
    if path.ends_with("/sync/hostKey") {
        limits.login_body()
    } else if path.ends_with("/sync/upload") {
        limits.full_upload_body()
    } else if path.ends_with("/msync/uploadChanges") {
        limits.media_body()
    } else {
        limits.json_body()
    }
}

async fn run_decoded(request: Request, parts: LegacyParts, next: Next) -> Response {
    let (mut head, _) = request.into_parts();
    head.extensions.insert(parts.header());
    // A missing or empty `data` part means `{}`, as on the reference server.
    let (body, gzip) = match parts.spilled {
        Some(file) => {
            let file = tokio::fs::File::from_std(file);
            let stream = tokio_util::io::ReaderStream::new(file);
            (Body::from_stream(stream), parts.gzip)
        }
        None if parts.data.is_empty() => (Body::from(&b"{}"[..]), false),
        None => (Body::from(parts.data), parts.gzip),
    };
    let request = Request::from_parts(head, body);
    with_wire(Wire::Legacy { gzip }, next.run(request)).await
}

/// `GET /msync/begin?k=<host key>&v=<client version>`: the body the POST handler expects is
/// `{"v": <client version>}`.
fn begin_query(query: &str) -> Result<LegacyParts, ApiError> {
    let mut parts = LegacyParts::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value)?;
        if value.len() as u64 > MAX_TEXT_PART {
            return Err(ApiError::bad_request("query parameter too long"));
        }
        match key {
            "k" => parts.host_key = value,
            "v" => parts.client_version = value,
            _ => {}
        }
    }
    parts.data = serde_json::to_vec(&serde_json::json!({ "v": parts.client_version }))?;
    Ok(parts)
}

fn percent_decode(value: &str) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| ApiError::bad_request("bad percent-encoding in the query"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| ApiError::bad_request("query is not UTF-8"))
}

fn multipart_error(err: multer::Error) -> ApiError {
    match err {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            ApiError::PayloadTooLarge(format!("multipart request part too large: {err}"))
        }
        other => ApiError::bad_request(format!("malformed multipart body: {other}")),
    }
}

/// Reads the multipart body with its caps: the whole body and the `data` part are bounded by
/// the compressed-body cap, every other part by [`MAX_TEXT_PART`], so nothing unbounded is
/// ever buffered. The `data` part is kept as sent (past [`SPILL_AT`], in an unnamed temporary
/// file in `spill_dir`); the body readers decompress it with the uncompressed cap.
pub async fn read_multipart(
    headers: &axum::http::HeaderMap,
    body: Body,
    limits: BodyLimits,
    spill_dir: &std::path::Path,
) -> Result<LegacyParts, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    let boundary = multer::parse_boundary(content_type).map_err(multipart_error)?;
    let constraints = multer::Constraints::new().size_limit(
        multer::SizeLimit::new()
            .whole_stream(limits.max_compressed.saturating_add(64 * 1024))
            .per_field(MAX_TEXT_PART)
            .for_field("data", limits.max_compressed),
    );
    let mut multipart =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    let mut parts = LegacyParts::default();
    let mut compressed = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        if name == "data" {
            read_data_part(&mut field, &mut parts, spill_dir).await?;
            continue;
        }
        let value = field.bytes().await.map_err(multipart_error)?;
        let text = || String::from_utf8_lossy(&value).into_owned();
        match name.as_str() {
            "c" => compressed = Some(text()),
            "k" | "sk" if parts.host_key.is_empty() => parts.host_key = text(),
            "s" => parts.session_key = text(),
            "v" => parts.client_version = text(),
            _ => {}
        }
    }
    parts.gzip = match compressed.as_deref() {
        None | Some("0") => false,
        Some("1") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "unknown value {other:?} of the c part"
            )));
        }
    };
    Ok(parts)
}

/// Reads the `data` part, moving it to an unnamed temporary file once it passes [`SPILL_AT`].
async fn read_data_part(
    field: &mut multer::Field<'_>,
    parts: &mut LegacyParts,
    spill_dir: &std::path::Path,
) -> Result<(), ApiError> {
    use tokio::io::{AsyncSeekExt, AsyncWriteExt};
    let mut data = Vec::new();
    let mut spilled: Option<tokio::fs::File> = None;
    while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
        match spilled.as_mut() {
            Some(file) => file.write_all(&chunk).await?,
            None if data.len() + chunk.len() > SPILL_AT => {
                let dir = spill_dir.to_path_buf();
                let file =
                    tokio::task::spawn_blocking(move || tempfile::tempfile_in(dir)).await??;
                let mut file = tokio::fs::File::from_std(file);
                file.write_all(&data).await?;
                file.write_all(&chunk).await?;
                data = Vec::new();
                spilled = Some(file);
            }
            None => data.extend_from_slice(&chunk),
        }
    }
    match spilled {
        Some(mut file) => {
            file.flush().await?;
            file.rewind().await?;
            parts.spilled = Some(file.into_std().await);
        }
        None => parts.data = data,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_sync_trees_are_decoded() {
        for path in [
            "/sync/meta",
            "/sync/hostKey",
            "/msync/begin",
            "/msync/uploadChanges",
            "/anki/sync/start",
            "/anki/msync/begin",
            "/sync",
        ] {
            assert!(is_sync_path(path), "{path}");
        }
        for path in [
            "/health",
            "/anki/health",
            "/",
            "/syncx/meta",
            "/async/meta",
            "/other",
        ] {
            assert!(!is_sync_path(path), "{path}");
        }
    }

    fn limits() -> BodyLimits {
        BodyLimits::sizes(1024, 4096)
    }

    fn multipart(parts: &[(&str, &[u8])]) -> (axum::http::HeaderMap, Body) {
        let mut body = Vec::new();
        for (name, value) in parts {
            body.extend_from_slice(b"--XyZ\r\n");
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(value);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(b"--XyZ--\r\n");
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        (headers, Body::from(body))
    }

    #[tokio::test]
    async fn reads_the_parts_of_a_legacy_request() {
        let (headers, body) = multipart(&[
            ("data", b"\x1f\x8bgz"),
            ("c", b"1"),
            ("k", b"hkey"),
            ("s", b"sess"),
        ]);
        let parts = read_multipart(&headers, body, limits(), &std::env::temp_dir())
            .await
            .unwrap();
        assert_eq!(parts.data, b"\x1f\x8bgz");
        assert!(parts.spilled.is_none());
        assert!(parts.gzip);
        assert_eq!(parts.host_key, "hkey");
        assert_eq!(parts.session_key, "sess");
        assert_eq!(parts.client_version, "");
    }

    #[tokio::test]
    async fn a_large_data_part_is_spooled_to_an_unnamed_file_not_kept_in_memory() {
        use std::io::Read;
        let big: Vec<u8> = (0..4 * SPILL_AT).map(|i| (i % 251) as u8).collect();
        let (headers, body) = multipart(&[("data", &big), ("k", b"hkey")]);
        let dir = tempfile::tempdir().unwrap();
        let parts = read_multipart(
            &headers,
            body,
            BodyLimits::sizes(1 << 24, 1 << 24),
            dir.path(),
        )
        .await
        .unwrap();
        assert!(parts.data.is_empty());
        assert_eq!(parts.host_key, "hkey");
        let mut spooled = Vec::new();
        parts
            .spilled
            .expect("spooled to a file")
            .read_to_end(&mut spooled)
            .unwrap();
        assert_eq!(spooled, big);
        // Unnamed: nothing to clean up after a crash.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn media_requests_name_the_key_sk() {
        let (headers, body) = multipart(&[("data", b"{}"), ("sk", b"hkey")]);
        let parts = read_multipart(&headers, body, limits(), &std::env::temp_dir())
            .await
            .unwrap();
        assert_eq!(parts.host_key, "hkey");
        assert!(!parts.gzip);
    }

    #[tokio::test]
    async fn an_oversized_part_is_413() {
        let big = vec![b'a'; 2000];
        let (headers, body) = multipart(&[("data", &big)]);
        let err = read_multipart(&headers, body, limits(), &std::env::temp_dir())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
        let long_key = vec![b'k'; 2000];
        let (headers, body) = multipart(&[("k", &long_key)]);
        let err = read_multipart(
            &headers,
            body,
            BodyLimits::sizes(1 << 20, 1 << 20),
            &std::env::temp_dir(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn a_broken_body_is_400() {
        let mut headers = axum::http::HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            "multipart/form-data; boundary=XyZ".parse().unwrap(),
        );
        let err = read_multipart(
            &headers,
            Body::from("--XyZ\r\ngarbage"),
            limits(),
            &std::env::temp_dir(),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), 400);
        headers.insert(header::CONTENT_TYPE, "multipart/form-data".parse().unwrap());
        let err = read_multipart(&headers, Body::from(""), limits(), &std::env::temp_dir())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn the_begin_query_becomes_a_begin_body() {
        let parts = begin_query("k=abc%20d&v=anki%2C2.1.50").unwrap();
        assert_eq!(parts.host_key, "abc d");
        assert_eq!(parts.client_version, "anki,2.1.50");
        assert_eq!(parts.data, br#"{"v":"anki,2.1.50"}"#);
        assert_eq!(begin_query("k=%zz").unwrap_err().status(), 400);
    }

    #[tokio::test]
    async fn the_wire_is_scoped_to_the_request() {
        assert_eq!(current_wire(), Wire::V11);
        let inside = with_wire(Wire::Legacy { gzip: true }, async { current_wire() }).await;
        assert_eq!(inside, Wire::Legacy { gzip: true });
        assert_eq!(current_wire(), Wire::V11);
    }
}
