//! `POST /sync/upload`: a full upload replaces the user's collection (protocol §5.1).
//!
//! Answers are sentences with HTTP 200, as the client shows them to the user verbatim.

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::{ApiError, ApiResult};
use crate::import::{ImportLimits, reapply_pending};
use crate::normal_sync::end_session;
use crate::state::AppState;
use crate::storage::full_sync::{
    UPLOAD_CORRUPT, UPLOAD_OK, UPLOAD_TOO_LARGE, UploadOutcome, install_upload,
};
use crate::sync_log::{ClientTag, Counts, Kind, SyncLine, collection_usn};
use crate::transport::SyncResponse;
use crate::transport::body::{SpoolError, read_to_file};

pub async fn upload(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let line = |outcome: &str, before, after, bytes: u64| {
        SyncLine {
            kind: Kind::FullUpload,
            user_id: user.id,
            client: &client,
            outcome,
            usn_before: before,
            usn_after: after,
            received: Counts::default().with("collection_bytes", bytes),
            sent: Counts::default(),
            started,
        }
        .emit()
    };
    let files = state.data.user(user.id);
    {
        let files = files.clone();
        tokio::task::spawn_blocking(move || files.ensure_dir())
            .await?
            .map_err(|err| ApiError::Internal(err.into()))?;
    }
    // Receiving the body can take minutes; the user's lock is taken only afterwards.
    let spooled =
        match read_to_file(body, state.settings.limits.full_upload_body(), files.dir()).await {
            Ok(file) => file,
            Err(SpoolError::TooLarge) => {
                tracing::info!(user_id = user.id, "upload refused: over the size limit");
                line("refused_too_large", None, None, 0);
                return SyncResponse::bytes(UPLOAD_TOO_LARGE.into()).await;
            }
            Err(SpoolError::Api(err)) => return Err(err),
        };
    crate::fault::point("upload:spooled");

    let mut slot = state.registry.lock(user.id).await;
    end_session(&mut slot, "upload").await?;
    let limits = ImportLimits {
        max_collection_bytes: state.settings.max_uncompressed_bytes(),
    };
    let received = spooled.as_file().metadata().map(|m| m.len()).unwrap_or(0);
    let (outcome, usn_before, usn_after) = tokio::task::spawn_blocking(move || {
        let usn_before = collection_usn(&files.collection());
        let outcome = install_upload(&files, spooled)?;
        if outcome == UploadOutcome::Installed {
            // The uploading device may never have received some imports: merge them again
            // so the upload does not erase them (design §7).
            reapply_pending(&files, limits)?;
        }
        let usn_after = collection_usn(&files.collection());
        anyhow::Ok((outcome, usn_before, usn_after))
    })
    .await??;
    crate::fault::point("upload:installed");
    drop(slot);

    let answer = match outcome {
        UploadOutcome::Installed => {
            tracing::info!(user_id = user.id, "full upload installed");
            line("installed", usn_before, usn_after, received);
            UPLOAD_OK
        }
        UploadOutcome::Corrupt(reason) => {
            tracing::info!(user_id = user.id, reason = %reason, "full upload refused as corrupt");
            line("refused_corrupt", usn_before, usn_after, received);
            UPLOAD_CORRUPT
        }
    };
    SyncResponse::bytes(answer.into()).await
}
