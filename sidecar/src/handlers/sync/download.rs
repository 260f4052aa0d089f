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
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine, collection_usn};
use crate::transport::{SyncResponse, read_json};

pub async fn download(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let _: EmptyInput = read_json(body, state.body_limits()).await?;
    let files = state.data.user(user.id);
    let mut slot = state.registry.lock(user.id).await;
    end_session(&mut slot, "download").await?;
    let (snapshot, usn_before, usn_after) = tokio::task::spawn_blocking(move || {
        ensure_collection(&files)?;
        let usn_before = collection_usn(&files.collection());
        let snapshot = snapshot_for_download(&files)?;
        let usn_after = collection_usn(snapshot.path());
        // The file sent holds every import so far.
        mark_delivered(&files)?;
        anyhow::Ok((snapshot, usn_before, usn_after))
    })
    .await??;
    drop(slot);
    tracing::info!(user_id = user.id, "full download");
    // The uncompressed size of the collection file; the body on the wire is zstd.
    let size = snapshot.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    SyncLine {
        kind: Kind::FullDownload,
        user_id: user.id,
        client: &client,
        outcome: "sent",
        usn_before,
        usn_after,
        received: Counts::default(),
        sent: Counts::default().with("collection_bytes", size),
        started,
    }
    .emit();
    SyncResponse::file(snapshot)
}
