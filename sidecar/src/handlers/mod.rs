//! HTTP handlers, one endpoint per file, named after the protocol method.
//! They translate between wire types and storage; they hold no SQL.

mod calls;
pub mod health;
pub mod internal;
pub mod msync;
pub mod sync;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::auth::AuthedUser;
use crate::auth::client_ip;
use crate::auth::extractor::KeyCheck;
use crate::error::ApiError;
use crate::state::AppState;
use crate::sync_log::ClientTag;
use crate::transport::SyncHeader;
use crate::transport::body::{SpoolError, read_to_file};
use crate::transport::header::HEADER_NAME;
use crate::user_data::Received;

pub use calls::{Continuing, InSession, SyncJson, UserCall};

/// Encodes the answer of a user's operation as the call's JSON body; `()` is sent as `null`.
pub async fn json_answer<R: serde::Serialize>(
    operation: impl Future<Output = crate::user_data::UserDataResult<R>>,
) -> crate::error::ApiResult<crate::transport::SyncResponse> {
    crate::transport::SyncResponse::json(&operation.await?).await
}

/// The body of argument-less calls: `{"_pad":null}` from current clients, `{}` from older
/// ones. Any other key is refused, as on the official server (docs/sync-protocol.md#requests).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {
    #[serde(rename = "_pad", default)]
    _pad: Option<serde_json::Value>,
}

/// A router of `POST` calls from one list of `"/method" => module` entries; each module's
/// handler bears its name (`meta::meta`).
macro_rules! post_calls {
    ($($path:literal => $module:ident),* $(,)?) => {
        axum::Router::new()$(.route($path, axum::routing::post($module::$module)))*
    };
}
pub(crate) use post_calls;

/// The fallback of a protocol's router: the official server answers unknown methods with 400,
/// and the client treats it as such.
pub fn unknown_method(
    protocol: &'static str,
) -> impl Fn(axum::http::Uri) -> std::future::Ready<ApiError> + Clone + Send + Sync + 'static {
    move |uri| {
        let message = format!("unknown {protocol} method {}", uri.path());
        std::future::ready(ApiError::bad_request(message))
    }
}

/// Who is syncing, for the sync's log line: the client's IP from the configured source and
/// its version from the `anki-sync` header. Never rejects a request.
impl FromRequestParts<AppState> for ClientTag {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip::resolve(
            state.settings.ip_header,
            &parts.headers,
            client_ip::peer(parts),
        );
        let version = SyncHeader::parse(parts.headers.get(HEADER_NAME).map(|v| v.as_bytes()))
            .map(|header| header.client_version)
            .unwrap_or_default();
        Ok(ClientTag::new(ip, &version))
    }
}

/// A full or media sync call, which ends in one sync-log line: the user's service, who is
/// syncing, and when the call began. With `RECENT_KEY` (the media calls after `msync/begin`)
/// a host key verified moments ago is not looked up again, as for [`Continuing`] calls.
pub struct LoggedCall<const RECENT_KEY: bool = false> {
    pub user: crate::user_data::UserData,
    pub client: ClientTag,
    pub started: std::time::Instant,
}

/// A media call after `msync/begin`, with the sync-log details of [`LoggedCall`].
pub type ContinuingLogged = LoggedCall<true>;

impl<const RECENT_KEY: bool> LoggedCall<RECENT_KEY> {
    /// Receives a large body (a full upload, a media zip) into a temp file in the user's
    /// folder, which it creates first; a body over its cap is not an error here, since each
    /// call answers it in its own way. The user's lock is not taken.
    pub async fn receive(
        &self,
        body: axum::body::Body,
        limits: crate::limits::BodyLimits,
    ) -> Result<Received, ApiError> {
        self.user.prepare_folder().await?;
        match read_to_file(body, limits, self.user.folder()).await {
            Ok(file) => Ok(Received::File(file)),
            Err(SpoolError::TooLarge) => Ok(Received::TooLarge),
            Err(SpoolError::Api(err)) => Err(err),
        }
    }
}

impl<const RECENT_KEY: bool> FromRequestParts<AppState> for LoggedCall<RECENT_KEY> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let started = std::time::Instant::now();
        let check = KeyCheck::continuing(RECENT_KEY);
        let AuthedUser { user, .. } = AuthedUser::extract(parts, state, check).await?;
        let client = ClientTag::from_request_parts(parts, state).await?;
        Ok(Self {
            user: state.users.user(user.id),
            client,
            started,
        })
    }
}
