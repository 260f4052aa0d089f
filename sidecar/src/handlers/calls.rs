//! The extractors of calls that carry a JSON body: [`SyncJson`], the body alone; [`UserCall`],
//! a logged-in user's call; [`Continuing`], one that continues an operation begun moments
//! ago; [`InSession`], a call inside an open normal sync.

use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::auth::AuthedUser;
use crate::auth::extractor::KeyCheck;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transport::{SyncHeader, read_json, read_json_sized};
use crate::user_data::UserData;

/// The JSON body of a sync call, under the cap for JSON bodies.
pub struct SyncJson<T>(pub T);

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for SyncJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let input = read_json(request.into_body(), state.settings.limits.json_body()).await?;
        Ok(Self(input))
    }
}

/// A logged-in user's call: the user's service, the `anki-sync` header and the JSON body.
/// With `IN_SESSION` (see [`InSession`]) the header's session key must match the user's open
/// sync, and it is checked before the body is read. With `RECENT_KEY` (see [`Continuing`]) a
/// host key verified moments ago is not looked up again ([`KeyCheck::Recent`]).
pub struct UserCall<T, const IN_SESSION: bool = false, const RECENT_KEY: bool = false> {
    pub user: UserData,
    pub header: SyncHeader,
    pub input: T,
    /// The length of the JSON text, after decompression.
    pub body_len: usize,
}

/// A call that continues an operation its client began moments ago with a looked-up key:
/// `start` after `meta`, the media calls after `msync/begin`.
pub type Continuing<T> = UserCall<T, false, true>;

/// A call between `start` and `finish`: without the matching sync the body is never read
/// (409, docs/sync-protocol.md#sessions).
pub type InSession<T> = UserCall<T, true, true>;

impl<T, const IN_SESSION: bool, const RECENT_KEY: bool> FromRequest<AppState>
    for UserCall<T, IN_SESSION, RECENT_KEY>
where
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let check = KeyCheck::continuing(RECENT_KEY);
        let AuthedUser { user, header } = AuthedUser::extract(&mut parts, state, check).await?;
        let user = state.users.user(user.id);
        if IN_SESSION {
            user.ensure_session(&header.session_key).await?;
        }
        let (input, body_len) = read_json_sized(body, state.settings.limits.json_body()).await?;
        Ok(Self {
            user,
            header,
            input,
            body_len,
        })
    }
}
