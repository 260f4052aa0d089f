//! `GET /internal/v1/users/{id}/stats` and `POST /internal/v1/users/{id}/reset`: what the
//! Django admin shows and does for one user.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::error::{ApiError, ApiResult};
use crate::normal_sync::end_session;
use crate::state::AppState;
use crate::storage::user_data::{
    MediaOnReset, ResetReport, UserDataStats, reset_user_data, user_stats,
};

#[derive(Serialize)]
pub struct StatsResponse {
    user_id: i64,
    #[serde(flatten)]
    data: UserDataStats,
    /// Devices holding a valid-looking key (a password change invalidates them lazily).
    devices: i64,
    /// Last time a device used its key, in seconds since the epoch.
    last_seen: Option<i64>,
    sync_in_progress: bool,
}

pub async fn stats(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
) -> ApiResult<Json<StatsResponse>> {
    super::known_user::require_user(&state, user_id).await?;
    let files = state.data.user(user_id);
    let data = tokio::task::spawn_blocking(move || user_stats(&files)).await??;
    let (devices, last_seen) = state
        .db
        .host_key_summary(user_id)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let sync_in_progress = match state.registry.try_lock(user_id) {
        Some(slot) => slot.session.is_some(),
        None => true,
    };
    Ok(Json(StatsResponse {
        user_id,
        data,
        devices,
        last_seen,
        sync_in_progress,
    }))
}

fn default_true() -> bool {
    true
}

#[derive(Deserialize)]
pub struct ResetRequest {
    /// Safe by default: only report what would be deleted.
    #[serde(default = "default_true")]
    dry_run: bool,
    /// Older form of `media`: true is `keep`, false is `delete`.
    #[serde(default)]
    keep_media: bool,
    /// `delete`, `keep` or `keep_files`; wins over `keep_media`.
    #[serde(default)]
    media: Option<MediaOnReset>,
}

pub async fn reset(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
    Json(request): Json<ResetRequest>,
) -> ApiResult<Json<ResetReport>> {
    super::known_user::require_user(&state, user_id).await?;
    let files = state.data.user(user_id);
    let mut slot = state.registry.lock(user_id).await;
    if !request.dry_run {
        end_session(&mut slot, "reset by an admin").await?;
    }
    let media = request.media.unwrap_or(if request.keep_media {
        MediaOnReset::Keep
    } else {
        MediaOnReset::Delete
    });
    let report =
        tokio::task::spawn_blocking(move || reset_user_data(&files, request.dry_run, media))
            .await??;
    drop(slot);
    tracing::info!(
        user_id,
        dry_run = report.dry_run,
        media = ?report.media,
        leftovers = report.leftovers,
        cards = report.deleted.cards,
        notes = report.deleted.notes,
        media_files = report.deleted.media_files,
        "user sync data reset"
    );
    Ok(Json(report))
}
