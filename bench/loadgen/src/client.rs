//! Requests as the real client sends them, and the checks every answer must pass; the Rust
//! side of `load_bench.Client.post`.

use std::fmt;
use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub const SYNC_VERSION: u8 = 11;
pub const CLIENT_VERSION_SHORT: &str = "26.09.3,bench,linux";
/// Every request is bounded: a stuck server fails the operation, never hangs the run.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The real client's default zstd level, as Python's `zstandard.ZstdCompressor()`.
const ZSTD_LEVEL: i32 = 3;

/// A failed operation. `kind` names the class of failure as the Python driver's error
/// strings do: a wrong answer (`BenchError`), a transport failure or timeout, or a body
/// that is not the JSON expected (`ValueError`).
#[derive(Debug)]
pub struct Failure {
    pub kind: &'static str,
    pub detail: String,
}

impl Failure {
    pub fn wrong(detail: impl Into<String>) -> Failure {
        Failure {
            kind: "BenchError",
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// The `anki-sync` request header: `{"v":11,"k":hkey,"c":version,"s":session}`, keys in
/// this order and without spaces, as the Python driver writes it.
pub fn sync_header(hkey: &str, session_key: &str) -> String {
    #[derive(Serialize)]
    struct Header<'a> {
        v: u8,
        k: &'a str,
        c: &'a str,
        s: &'a str,
    }
    let header = Header {
        v: SYNC_VERSION,
        k: hkey,
        c: CLIENT_VERSION_SHORT,
        s: session_key,
    };
    serde_json::to_string(&header).expect("a struct of strings always serialises")
}

/// A new six-character session key from [a-zA-Z0-9], one per sync.
pub fn session_key() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(6)
        .map(char::from)
        .collect()
}

/// One pooled HTTP client (keep-alive connections) shared by every worker of a phase.
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    /// The URL of each method used so far, parsed once.
    urls: std::sync::Mutex<Vec<(String, reqwest::Url)>>,
}

/// Each worker's own zstd contexts, reused from request to request.
pub struct Codec {
    compressor: zstd::bulk::Compressor<'static>,
    decompressor: zstd::bulk::Decompressor<'static>,
}

impl Codec {
    pub fn new() -> std::io::Result<Codec> {
        Ok(Codec {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            decompressor: zstd::bulk::Decompressor::new()?,
        })
    }
}

impl Client {
    pub fn new(base_url: &str) -> reqwest::Result<Client> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .tcp_nodelay(true)
            // Loopback servers: no proxy from the environment (aiohttp's default too), and no
            // proxy matching at each request.
            .no_proxy()
            .build()?;
        Ok(Client {
            http,
            base_url: base_url.to_owned(),
            urls: Default::default(),
        })
    }

    fn url(&self, method: &str) -> Result<reqwest::Url, Failure> {
        let mut urls = self
            .urls
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some((_, url)) = urls.iter().find(|(name, _)| name == method) {
            return Ok(url.clone());
        }
        let url =
            reqwest::Url::parse(&format!("{}{method}", self.base_url)).map_err(|e| Failure {
                kind: "ValueError",
                detail: format!("{method}: server URL: {e}"),
            })?;
        urls.push((method.to_owned(), url.clone()));
        Ok(url)
    }

    /// POSTs `payload` zstd-compressed, with a Content-Length, and returns the checked,
    /// decompressed answer.
    pub async fn post(
        &self,
        codec: &mut Codec,
        method: &str,
        payload: &[u8],
        hkey: &str,
        session_key: &str,
    ) -> Result<Vec<u8>, Failure> {
        let body = codec.compressor.compress(payload).map_err(|e| Failure {
            kind: "ValueError",
            detail: format!("{method}: zstd: {e}"),
        })?;
        let answer = self
            .http
            .post(self.url(method)?)
            .header("anki-sync", sync_header(hkey, session_key))
            .header("Content-Type", "application/octet-stream")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(method, e))?;
        let status = answer.status().as_u16();
        let size = answer
            .headers()
            .get("anki-original-size")
            .map(|v| v.as_bytes().to_vec());
        let raw = answer.bytes().await.map_err(|e| transport(method, e))?;
        decode_answer(
            method,
            status,
            size.as_deref(),
            &raw,
            &mut codec.decompressor,
        )
    }

    /// `post` with a JSON payload and a JSON answer.
    pub async fn json<T: DeserializeOwned>(
        &self,
        codec: &mut Codec,
        method: &str,
        payload: &impl Serialize,
        hkey: &str,
        session_key: &str,
    ) -> Result<T, Failure> {
        let data = serde_json::to_vec(payload).map_err(|e| Failure {
            kind: "ValueError",
            detail: format!("{method}: encoding the request: {e}"),
        })?;
        let answer = self.post(codec, method, &data, hkey, session_key).await?;
        serde_json::from_slice(&answer).map_err(|e| Failure {
            kind: "ValueError",
            detail: format!("{method}: the answer is not the JSON expected: {e}"),
        })
    }
}

fn transport(method: &str, error: reqwest::Error) -> Failure {
    let kind = if error.is_timeout() {
        "TimeoutError"
    } else {
        "ClientError"
    };
    Failure {
        kind,
        detail: format!("{method}: {error}"),
    }
}

/// The checks of every answer: status 200, an `anki-original-size` header, and a zstd body
/// that decompresses to exactly that many bytes.
pub fn decode_answer(
    method: &str,
    status: u16,
    original_size: Option<&[u8]>,
    raw: &[u8],
    decompressor: &mut zstd::bulk::Decompressor<'_>,
) -> Result<Vec<u8>, Failure> {
    if status != 200 {
        let head = String::from_utf8_lossy(&raw[..raw.len().min(200)]);
        return Err(Failure::wrong(format!("{method}: HTTP {status}: {head:?}")));
    }
    let Some(size) = original_size else {
        return Err(Failure::wrong(format!(
            "{method}: 200 without anki-original-size"
        )));
    };
    let text = String::from_utf8_lossy(size);
    let size: usize = text
        .trim()
        .parse()
        .map_err(|_| Failure::wrong(format!("{method}: anki-original-size {text:?}")))?;
    // One byte of room beyond the announced size, so that a longer body is seen as longer
    // rather than as a decompression error.
    let data = decompressor
        .decompress(raw, size + 1)
        .map_err(|e| Failure {
            kind: "ValueError",
            detail: format!("{method}: zstd body ({} bytes): {e}", raw.len()),
        })?;
    if data.len() != size {
        return Err(Failure::wrong(format!(
            "{method}: anki-original-size {size}, body has {}",
            data.len()
        )));
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sync_header_is_compact_json_in_the_clients_key_order() {
        assert_eq!(
            sync_header("abc\"d", "Xy12zZ"),
            r#"{"v":11,"k":"abc\"d","c":"26.09.3,bench,linux","s":"Xy12zZ"}"#
        );
    }

    #[test]
    fn session_keys_are_six_alphanumeric_characters() {
        let key = session_key();
        assert_eq!(key.len(), 6);
        assert!(key.chars().all(|c| c.is_ascii_alphanumeric()), "{key}");
    }

    fn decode(status: u16, size: Option<&str>, raw: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
        decode_answer(
            "sync/meta",
            status,
            size.map(str::as_bytes),
            raw,
            &mut decompressor,
        )
    }

    #[test]
    fn an_answer_of_the_announced_size_is_returned_decompressed() {
        let body = zstd::bulk::compress(b"{\"cont\":true}", 3).unwrap();
        assert_eq!(decode(200, Some("13"), &body).unwrap(), b"{\"cont\":true}");
    }

    #[test]
    fn a_body_shorter_or_longer_than_announced_is_a_wrong_answer() {
        let body = zstd::bulk::compress(b"0123456789", 3).unwrap();
        let longer = decode(200, Some("11"), &body).unwrap_err();
        assert_eq!(
            longer.to_string(),
            "BenchError: sync/meta: anki-original-size 11, body has 10"
        );
        // More than one byte beyond the announced size does not fit the buffer.
        assert!(decode(200, Some("8"), &body).is_err());
        let shorter = decode(200, Some("9"), &body).unwrap_err();
        assert_eq!(
            shorter.to_string(),
            "BenchError: sync/meta: anki-original-size 9, body has 10"
        );
    }

    #[test]
    fn a_missing_size_or_a_status_other_than_200_is_a_wrong_answer() {
        let body = zstd::bulk::compress(b"{}", 3).unwrap();
        let missing = decode(200, None, &body).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "BenchError: sync/meta: 200 without anki-original-size"
        );
        let status = decode(403, Some("2"), b"no such user").unwrap_err();
        assert_eq!(
            status.to_string(),
            "BenchError: sync/meta: HTTP 403: \"no such user\""
        );
        assert!(
            decode(200, Some("two"), &body)
                .unwrap_err()
                .detail
                .contains("\"two\"")
        );
    }
}
