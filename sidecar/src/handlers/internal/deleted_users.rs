//! The sync data of users deleted in Django (docs/operations.md, "Deleting a user").
//!
//! - `GET /internal/v1/deleted-users`: the ids that still have a folder under `users/` or
//!   host-key rows but no row in Django's user table.
//! - `DELETE /internal/v1/deleted-users/{id}`: removes that user's folder and host keys. A
//!   user who still exists is refused with 409, so a mistaken call cannot wipe a live user.
//!
//! Django calls the second after a user's deletion commits, and its `remove_orphaned_sync_data`
//! command uses both.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Serialize)]
pub struct DeletedUser {
    user_id: i64,
    folder: bool,
    host_keys: i64,
}

#[derive(Serialize)]
pub struct DeletedUsers {
    users: Vec<DeletedUser>,
}

pub async fn list(State(state): State<AppState>) -> ApiResult<Json<DeletedUsers>> {
    let folders: BTreeSet<i64> = state.users.with_folders().await?.into_iter().collect();
    let keyed: BTreeSet<i64> = state.db.host_key_user_ids().await?.into_iter().collect();
    let mut users = Vec::new();
    for user_id in folders.union(&keyed).copied() {
        if user_exists(&state, user_id).await? {
            continue;
        }
        let host_keys = if keyed.contains(&user_id) {
            state.db.host_key_summary(user_id).await?.0
        } else {
            0
        };
        users.push(DeletedUser {
            user_id,
            folder: folders.contains(&user_id),
            host_keys,
        });
    }
    Ok(Json(DeletedUsers { users }))
}

#[derive(Serialize)]
pub struct Removed {
    user_id: i64,
    folder_removed: bool,
    host_keys_removed: u64,
}

pub async fn remove(
    State(state): State<AppState>,
    Path(user_id): Path<i64>,
) -> ApiResult<Json<Removed>> {
    if user_exists(&state, user_id).await? {
        return Err(ApiError::Conflict(format!(
            "user {user_id} still exists in Django; only the data of deleted users is removed here"
        )));
    }
    let (folder_removed, host_keys_removed) = state
        .users
        .user(user_id)
        .remove(state.db.delete_host_keys_of_user(user_id))
        .await?;
    tracing::info!(
        user_id,
        folder_removed,
        host_keys_removed,
        "sync data of a deleted user removed"
    );
    Ok(Json(Removed {
        user_id,
        folder_removed,
        host_keys_removed,
    }))
}

async fn user_exists(state: &AppState, user_id: i64) -> ApiResult<bool> {
    Ok(state.db.find_user_by_id(user_id).await?.is_some())
}
