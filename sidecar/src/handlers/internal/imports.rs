//! `POST /internal/v1/users/{id}/imports`: merge an `.apkg` into the user's collection
//! (design §7), and `GET /internal/v1/users/by-username/{name}` for the command-line client.

use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::OwnedMutexGuard;

use crate::error::{ApiError, ApiResult};
use crate::import::ledger::Ledger;
use crate::import::{ImportError, ImportLimits, ImportSummary, apply_package};
use crate::registry::UserSlot;
use crate::state::AppState;

const MAX_KEY_LEN: usize = 200;

fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
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

/// Streams the package to a temporary file in `dir`, hashing it on the way.
async fn spool_package(
    body: Body,
    max_bytes: u64,
    dir: &std::path::Path,
) -> ApiResult<(tempfile::NamedTempFile, String)> {
    let spooled = tempfile::Builder::new()
        .prefix(".import-")
        .suffix(".apkg")
        .tempfile_in(dir)
        .map_err(|err| ApiError::Internal(err.into()))?;
    let mut writer = tokio::fs::File::from_std(
        spooled
            .reopen()
            .map_err(|err| ApiError::Internal(err.into()))?,
    );
    let mut hasher = Sha256::new();
    let mut written: u64 = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|err| ApiError::bad_request(format!("could not read the body: {err}")))?;
        written += chunk.len() as u64;
        if written > max_bytes {
            return Err(ApiError::PayloadTooLarge(format!(
                "package larger than {} MiB",
                max_bytes / (1024 * 1024)
            )));
        }
        hasher.update(&chunk);
        writer
            .write_all(&chunk)
            .await
            .map_err(|err| ApiError::Internal(err.into()))?;
    }
    writer
        .flush()
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    if written == 0 {
        return Err(ApiError::bad_request(
            "the body is empty; send the .apkg file",
        ));
    }
    Ok((spooled, hex::encode(hasher.finalize())))
}

/// The user's lock, once no normal sync is open: an import waits for a sync in progress to
/// end instead of breaking it. Gives up with 503 after `wait`.
async fn lock_between_syncs(
    state: &AppState,
    user_id: i64,
    wait: Duration,
) -> Result<OwnedMutexGuard<UserSlot>, Response> {
    let started = Instant::now();
    let mut logged = false;
    loop {
        let slot = state.registry.lock(user_id).await;
        if slot.session.is_none() {
            return Ok(slot);
        }
        drop(slot);
        if !logged {
            tracing::info!(user_id, "import waits for the user's sync to end");
            logged = true;
        }
        if started.elapsed() >= wait {
            let mut response = (
                StatusCode::SERVICE_UNAVAILABLE,
                "the user is syncing right now; retry the import shortly\n",
            )
                .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return Err(response);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

enum Outcome {
    Applied(ImportSummary),
    Replayed(ImportSummary),
    /// The key was used before for a different package.
    KeyReused,
}

pub async fn import(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
    let user = state
        .db
        .find_user_by_id(user_id)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?
        .ok_or_else(|| ApiError::NotFound(format!("no user with id {user_id}")))?;
    let files = state.data.user(user.id);
    {
        let files = files.clone();
        tokio::task::spawn_blocking(move || files.ensure_dir())
            .await?
            .map_err(|err| ApiError::Internal(err.into()))?;
    }
    let (package, sha256) =
        spool_package(body, state.settings.max_body_bytes(), files.dir()).await?;
    crate::fault::point("import:spooled");

    let wait = Duration::from_secs(state.settings.import_wait_secs);
    let slot = match lock_between_syncs(&state, user.id, wait).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(busy),
    };
    let limits = ImportLimits {
        max_collection_bytes: state.settings.max_uncompressed_bytes(),
    };
    let outcome = tokio::task::spawn_blocking(move || -> Result<Outcome, ImportError> {
        let mut ledger = Ledger::open(&files)?;
        if let Some(key) = key.as_deref()
            && let Some(past) = ledger.find_by_key(key)?
        {
            if past.package_sha256 != sha256 {
                return Ok(Outcome::KeyReused);
            }
            let mut summary: ImportSummary =
                serde_json::from_str(&past.summary).map_err(anyhow::Error::from)?;
            summary.replayed = true;
            return Ok(Outcome::Replayed(summary));
        }
        let mut summary = apply_package(&files, package.path(), limits)?;
        crate::fault::point("import:merged");
        let id = ledger.record(
            key.as_deref(),
            &sha256,
            |id| {
                let mut stored = summary.clone();
                stored.import_id = id;
                Ok(serde_json::to_string(&stored)?)
            },
            package.path(),
        )?;
        summary.import_id = id;
        crate::fault::point("import:recorded");
        Ok(Outcome::Applied(summary))
    })
    .await?;
    drop(slot);

    match outcome {
        Ok(Outcome::Applied(summary)) => {
            tracing::info!(
                user_id = user.id,
                import_id = summary.import_id,
                "import applied"
            );
            crate::metrics::import_result("applied");
            Ok(Json(summary).into_response())
        }
        Ok(Outcome::Replayed(summary)) => {
            tracing::info!(
                user_id = user.id,
                import_id = summary.import_id,
                "import replayed"
            );
            crate::metrics::import_result("replayed");
            Ok(Json(summary).into_response())
        }
        Ok(Outcome::KeyReused) => {
            crate::metrics::import_result("refused");
            Err(ApiError::Conflict(
                "this Idempotency-Key was already used for a different package".into(),
            ))
        }
        Err(ImportError::BadPackage(message)) => {
            crate::metrics::import_result("refused");
            Err(ApiError::BadRequest(format!("bad package: {message}")))
        }
        Err(ImportError::Internal(err)) => {
            crate::metrics::import_result("failed");
            Err(ApiError::Internal(err))
        }
    }
}

#[derive(Serialize)]
pub struct UserLookup {
    user_id: i64,
    username: String,
    is_active: bool,
}

pub async fn user_by_username(
    State(state): State<AppState>,
    Path(username): Path<String>,
) -> ApiResult<Json<UserLookup>> {
    let user = state
        .db
        .find_user_by_username(&username)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?
        .ok_or_else(|| ApiError::NotFound(format!("no user named {username:?}")))?;
    Ok(Json(UserLookup {
        user_id: user.id,
        username: user.username,
        is_active: user.is_active,
    }))
}
