//! [`InSession`]: what every call inside an open normal sync starts with.

use axum::extract::{FromRequest, FromRequestParts, Request};
use serde::de::DeserializeOwned;

use crate::auth::AuthedUser;
use crate::error::ApiError;
use crate::state::AppState;
use crate::transport::read_json;
use crate::user_data::UserData;

/// A call between `start` and `finish`: the user, the session key from the `anki-sync`
/// header, and the JSON body. The session is checked first, so that without the matching
/// sync the body is never read (409, docs/sync-protocol.md#sessions).
pub struct InSession<T> {
    pub user: UserData,
    pub session_key: String,
    pub input: T,
}

impl<T: DeserializeOwned + Send + 'static> FromRequest<AppState> for InSession<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let AuthedUser { user, header } = AuthedUser::from_request_parts(&mut parts, state).await?;
        let user = state.users.user(user.id);
        user.ensure_session(&header.session_key).await?;
        let input = read_json(body, state.settings.limits.json_body()).await?;
        Ok(Self {
            user,
            session_key: header.session_key,
            input,
        })
    }
}
