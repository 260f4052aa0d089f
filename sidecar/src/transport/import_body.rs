//! The body of an import (`POST /internal/v1/users/{id}/imports`): a raw `.apkg`, streamed to
//! a temporary file in the user's folder and hashed on the way, and its `Idempotency-Key`.

use axum::body::Body;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};
use crate::spool;

const MAX_KEY_LEN: usize = 200;

/// The `Idempotency-Key` header, if any: 1 to 200 printable ASCII characters.
pub fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|key| {
            !key.is_empty()
                && key.len() <= MAX_KEY_LEN
                && key.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} printable ASCII characters"
            ))
        })?;
    Ok(Some(key.to_string()))
}

/// Streams the package to a temporary file in `dir`, hashing it on the way. Returns the file
/// and its SHA-256 in hex.
pub async fn spool_package(
    body: Body,
    max_bytes: u64,
    dir: &std::path::Path,
) -> ApiResult<(tempfile::NamedTempFile, String)> {
    let mut hasher = Sha256::new();
    let (spooled, written) =
        spool::body_to_temp_file(body, dir, (".import-", ".apkg"), max_bytes, None, |piece| {
            hasher.update(piece)
        })
        .await
        .map_err(|err| match err {
            spool::Error::TooLarge { .. } => ApiError::PayloadTooLarge(format!(
                "package larger than {} MiB",
                max_bytes / (1024 * 1024)
            )),
            spool::Error::Body(err) => {
                ApiError::bad_request(format!("could not read the body: {err}"))
            }
            spool::Error::Read(err) | spool::Error::Write(err) => ApiError::from(err),
            spool::Error::TimedOut => ApiError::bad_request("the body stalled"),
        })?;
    if written == 0 {
        return Err(ApiError::bad_request(
            "the body is empty; send the .apkg file",
        ));
    }
    Ok((spooled, hex::encode(hasher.finalize())))
}
