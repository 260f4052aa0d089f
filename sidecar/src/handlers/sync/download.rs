//! `POST /sync/download`: a full download sends the whole collection file (protocol §5.2).

use axum::body::Body;
use axum::extract::State;

use crate::auth::AuthedUser;
use crate::error::ApiResult;
use crate::handlers::EmptyInput;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::{SyncResponse, read_json};

pub async fn download(
    State(state): State<AppState>,
    AuthedUser { user, .. }: AuthedUser,
    client: ClientTag,
    body: Body,
) -> ApiResult<SyncResponse> {
    let started = std::time::Instant::now();
    let _: EmptyInput = read_json(body, state.settings.limits.json_body()).await?;
    let snapshot = state
        .users
        .user(user.id)
        .full_download(&client, started)
        .await?;
    SyncResponse::file(snapshot)
}
