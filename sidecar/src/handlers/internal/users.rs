//! `GET /internal/v1/users/{id}/stats` and `POST /internal/v1/users/{id}/reset`: what the
//! Django admin shows and does for one user.

use axum::Json;
use axum::extract::{Path, State};
use serde::{Deserialize, Serialize};

use crate::error::ApiResult;
use crate::state::AppState;
use crate::user_data::admin::{MediaOnReset, ResetReport, UserDataStats};

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
    let (data, sync_in_progress) = state.users.user(user_id).stats().await?;
    let (devices, last_seen) = state.db.host_key_summary(user_id).await?;
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
    let media = request.media.unwrap_or(if request.keep_media {
        MediaOnReset::Keep
    } else {
        MediaOnReset::Delete
    });
    let report = state
        .users
        .user(user_id)
        .reset(request.dry_run, media)
        .await?;
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
