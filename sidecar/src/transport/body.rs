//! Reading zstd request bodies with caps on both the compressed and the decompressed size.
//! A legacy request's `data` part (gzip or raw) goes through the same readers and caps; the
//! request's [`Wire`] says which decoder applies.
//!
//! Clients stream bodies chunked, without `Content-Length` (protocol §1.2), so axum's default
//! 2 MB limit is disabled on the sync routes and the caps are enforced here, while reading.

use std::io::{Read, Write};
use std::path::Path;

use axum::body::Body;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::io::AsyncWriteExt;

use super::legacy::{Wire, current_wire};
use crate::error::{ApiError, ApiResult};

/// Bodies smaller than this are decompressed inline; larger ones off the async executor.
const INLINE_DECOMPRESS_LIMIT: usize = 64 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct BodyLimits {
    pub max_compressed: u64,
    pub max_uncompressed: u64,
}

fn compressed_too_large(limits: BodyLimits) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "request body exceeds the limit of {} bytes",
        limits.max_compressed
    ))
}

fn uncompressed_too_large(limits: BodyLimits) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "decompressed request body exceeds the limit of {} bytes",
        limits.max_uncompressed
    ))
}

fn body_read_error(err: axum::Error) -> ApiError {
    ApiError::bad_request(format!("failed to read request body: {err}"))
}

/// Collects the compressed body, refusing it as soon as it passes the compressed cap.
async fn collect_compressed(body: Body, limits: BodyLimits) -> ApiResult<Vec<u8>> {
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_read_error)?;
        if (data.len() + chunk.len()) as u64 > limits.max_compressed {
            return Err(compressed_too_large(limits));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// The decoder of a body in the given wire format: zstd for v11, gzip or nothing for legacy.
fn decoder<'a, R: std::io::BufRead + 'a>(
    wire: Wire,
    source: R,
) -> std::io::Result<Box<dyn Read + 'a>> {
    Ok(match wire {
        Wire::V11 => Box::new(zstd::stream::read::Decoder::with_buffer(source)?),
        Wire::Legacy { gzip: true } => Box::new(flate2::bufread::GzDecoder::new(source)),
        Wire::Legacy { gzip: false } => Box::new(source),
    })
}

fn not_decodable(wire: Wire, err: std::io::Error) -> ApiError {
    match wire {
        Wire::V11 => ApiError::bad_request(format!("body is not valid zstd: {err}")),
        Wire::Legacy { .. } => ApiError::bad_request(format!("data part is not valid gzip: {err}")),
    }
}

/// Decompresses a zstd buffer, failing once the output passes `max_uncompressed`.
pub fn decompress_capped(compressed: &[u8], limits: BodyLimits) -> ApiResult<Vec<u8>> {
    decompress_wire(Wire::V11, compressed, limits)
}

/// Decodes a body of the given wire format, failing once the output passes `max_uncompressed`.
pub fn decompress_wire(wire: Wire, compressed: &[u8], limits: BodyLimits) -> ApiResult<Vec<u8>> {
    let decoder = decoder(wire, compressed).map_err(|err| not_decodable(wire, err))?;
    let mut out = Vec::new();
    decoder
        .take(limits.max_uncompressed.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|err| not_decodable(wire, err))?;
    if out.len() as u64 > limits.max_uncompressed {
        return Err(uncompressed_too_large(limits));
    }
    Ok(out)
}

/// Reads and decompresses a whole body into memory. For JSON requests and media zips, which
/// are small by protocol (at most a few MiB).
pub async fn read_bytes(body: Body, limits: BodyLimits) -> ApiResult<Vec<u8>> {
    let wire = current_wire();
    let compressed = collect_compressed(body, limits).await?;
    if compressed.len() <= INLINE_DECOMPRESS_LIMIT {
        decompress_wire(wire, &compressed, limits)
    } else {
        tokio::task::spawn_blocking(move || decompress_wire(wire, &compressed, limits)).await?
    }
}

/// Reads a JSON body. `{}`-style empty inputs work because they are still valid JSON.
pub async fn read_json<T: DeserializeOwned>(body: Body, limits: BodyLimits) -> ApiResult<T> {
    let bytes = read_bytes(body, limits).await?;
    parse_json(&bytes)
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))
}

/// Why a spooled body could not be kept.
#[derive(Debug)]
pub enum SpoolError {
    /// Past one of the caps. Full uploads answer this with a protocol sentence, not a status.
    TooLarge,
    Api(ApiError),
}

impl From<ApiError> for SpoolError {
    fn from(err: ApiError) -> Self {
        SpoolError::Api(err)
    }
}

/// Streams a (possibly huge) body to disk: the compressed bytes go to one temporary file in
/// `dir`, and are then decompressed into a second one, so that neither copy is held in memory.
/// The result lives in `dir` so that it can later be renamed over a file there atomically.
pub async fn read_to_file(
    body: Body,
    limits: BodyLimits,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, SpoolError> {
    let compressed = tempfile::Builder::new()
        .prefix(".upload-zst-")
        .tempfile_in(dir)
        .map_err(|err| ApiError::Internal(err.into()))?;
    let mut writer = tokio::fs::File::from_std(
        compressed
            .reopen()
            .map_err(|err| ApiError::Internal(err.into()))?,
    );
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_read_error)?;
        written += chunk.len() as u64;
        if written > limits.max_compressed {
            return Err(SpoolError::TooLarge);
        }
        writer
            .write_all(&chunk)
            .await
            .map_err(|err| ApiError::Internal(err.into()))?;
    }
    writer
        .flush()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    drop(writer);

    let dir = dir.to_path_buf();
    let wire = current_wire();
    tokio::task::spawn_blocking(move || decompress_file(wire, compressed, limits, &dir))
        .await
        .map_err(ApiError::from)?
}

fn decompress_file(
    wire: Wire,
    compressed: tempfile::NamedTempFile,
    limits: BodyLimits,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, SpoolError> {
    let internal = |err: std::io::Error| SpoolError::Api(ApiError::Internal(err.into()));
    let mut plain = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)
        .map_err(internal)?;
    let source = std::io::BufReader::new(compressed.reopen().map_err(internal)?);
    let mut decoder =
        decoder(wire, source).map_err(|err| SpoolError::Api(not_decodable(wire, err)))?;
    let mut buffer = vec![0u8; 256 * 1024];
    let mut total: u64 = 0;
    loop {
        let read = decoder
            .read(&mut buffer)
            .map_err(|err| SpoolError::Api(not_decodable(wire, err)))?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > limits.max_uncompressed {
            return Err(SpoolError::TooLarge);
        }
        plain.write_all(&buffer[..read]).map_err(internal)?;
    }
    plain.as_file().sync_all().map_err(internal)?;
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: BodyLimits = BodyLimits {
        max_compressed: 1024,
        max_uncompressed: 4096,
    };

    #[test]
    fn decompresses_within_the_caps() {
        let compressed = zstd::encode_all(&br#"{"v":11}"#[..], 0).unwrap();
        assert_eq!(
            decompress_capped(&compressed, LIMITS).unwrap(),
            br#"{"v":11}"#
        );
    }

    #[test]
    fn refuses_bodies_that_decompress_past_the_cap() {
        let compressed = zstd::encode_all(&vec![b'a'; 10_000][..], 0).unwrap();
        assert!(compressed.len() < 1024);
        let err = decompress_capped(&compressed, LIMITS).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn refuses_bytes_that_are_not_zstd() {
        let err = decompress_capped(b"{\"plain\": true}", LIMITS).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[tokio::test]
    async fn refuses_compressed_bodies_past_the_cap() {
        let err = read_bytes(Body::from(vec![0u8; 2000]), LIMITS)
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn spools_a_body_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let compressed = zstd::encode_all(&b"SQLite format 3\0"[..], 0).unwrap();
        let file = read_to_file(Body::from(compressed), LIMITS, dir.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), b"SQLite format 3\0");
        let too_big = zstd::encode_all(&vec![b'x'; 5000][..], 0).unwrap();
        assert!(matches!(
            read_to_file(Body::from(too_big), LIMITS, dir.path()).await,
            Err(SpoolError::TooLarge)
        ));
    }
}
