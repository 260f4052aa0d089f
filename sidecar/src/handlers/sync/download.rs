//! `POST /sync/download`: a full download sends the whole collection file (protocol §5.2).

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::import::ledger::mark_delivered;
use crate::normal_sync::end_session;
use crate::state::AppState;
use crate::storage::full_sync::snapshot_for_download;
use crate::storage::status::ensure_collection;
use crate::transport::{SyncResponse, read_json};

pub async fn download(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    body: Body,
) -> ApiResult<SyncResponse> {
    let _: EmptyInput = read_json(body, state.body_limits()).await?;
    let files = state.data.user(user.id);
    let mut slot = state.registry.lock(user.id).await;
    end_session(&mut slot, "download").await?;
    let snapshot = tokio::task::spawn_blocking(move || {
        ensure_collection(&files)?;
        let snapshot = snapshot_for_download(&files)?;
        // The file sent holds every import so far.
        mark_delivered(&files)?;
        anyhow::Ok(snapshot)
    })
    .await??;
    drop(slot);
    tracing::info!(user_id = user.id, "full download");
    SyncResponse::file(snapshot)
}
