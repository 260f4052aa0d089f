//! `AuthedUser`: a handler that takes it is authenticated; one that does not, is not.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::auth::host_key;
use crate::clock::now_secs;
use crate::db::users::DjangoUser;
use crate::error::ApiError;
use crate::request_log::RequestUser;
use crate::state::AppState;
use crate::transport::SyncHeader;

/// Refreshing `last_used_at` on every request would turn every sync call into a write.
const TOUCH_INTERVAL_SECS: i64 = 3600;

#[derive(Clone, Debug)]
pub struct AuthedUser {
    pub user: DjangoUser,
    pub header: SyncHeader,
}

impl FromRequestParts<AppState> for AuthedUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::extract(parts, state, KeyCheck::Lookup).await
    }
}

/// How a call's host key is checked.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KeyCheck {
    /// Looked up in the database: the calls that begin an operation (`meta`, `msync/begin`,
    /// the full sync calls, `abort`).
    Lookup,
    /// A call that continues an operation its client began moments ago: `start` and the calls
    /// of an open normal sync after `meta`, the media calls after `msync/begin`. A key the
    /// database confirmed within `db::verified_keys::RECHECK_AFTER` is taken as confirmed
    /// (docs/performance.md, "Host keys inside an operation").
    Recent,
}

impl KeyCheck {
    /// [`KeyCheck::Recent`] for a call that continues an operation, else [`KeyCheck::Lookup`].
    pub const fn continuing(continues: bool) -> Self {
        if continues {
            Self::Recent
        } else {
            Self::Lookup
        }
    }
}

impl AuthedUser {
    pub async fn extract(
        parts: &mut Parts,
        state: &AppState,
        check: KeyCheck,
    ) -> Result<Self, ApiError> {
        let header = SyncHeader::from_request_parts(parts, state).await?;
        let key_hash = digest_of_present(&header.host_key)?;
        let recalled = match check {
            KeyCheck::Recent => state.db.verified.recall(&key_hash),
            KeyCheck::Lookup => None,
        };
        let user = match recalled {
            Some(user) => user,
            None => authenticate(state, &key_hash).await?,
        };
        if let Some(logged) = parts.extensions.get::<RequestUser>() {
            let _ = logged.0.set(user.id);
        }
        Ok(Self { user, header })
    }
}

/// Resolves a host key to its user. Every failure is a 403, which makes Anki drop the stored
/// key and ask for the password again (docs/sync-protocol.md#login-and-host-keys).
/// `key_hash` is the digest of the key the call carries ([`digest_of_present`]).
pub async fn authenticate(state: &AppState, key_hash: &str) -> Result<DjangoUser, ApiError> {
    // Read before the lookup: a revocation that commits after it voids what is remembered.
    let epoch = state.db.verified.epoch();
    let stored = state
        .db
        .find_host_key(key_hash)
        .await?
        .ok_or_else(|| ApiError::Forbidden("unknown host key".into()))?;
    if !stored.user.is_active {
        // Deactivation logs out every device for good: the keys are deleted now, so that a
        // later reactivation does not bring them back (docs/operations.md, "Logging users
        // out").
        crate::auth::revocation::revoke_inactive(state, stored.user.id).await?;
        return Err(ApiError::Forbidden("account is inactive".into()));
    }
    let current = host_key::password_fingerprint(&stored.user.password);
    if !host_key::constant_time_eq(&current, &stored.password_fingerprint) {
        // The password changed since this device logged in: the key is dead for good.
        state.db.delete_host_key(key_hash).await?;
        return Err(ApiError::Forbidden(
            "password changed since login; log in again".into(),
        ));
    }
    let now = now_secs();
    if now - stored.last_used_at > TOUCH_INTERVAL_SECS {
        state.db.touch_host_key(key_hash, now).await?;
    }
    state.db.verified.remember(key_hash, &stored.user, epoch);
    Ok(stored.user)
}

/// The stored form of the key a call carries; a call without one is refused.
fn digest_of_present(key: &str) -> Result<String, ApiError> {
    if key.is_empty() {
        return Err(ApiError::Forbidden("missing host key".into()));
    }
    Ok(host_key::digest(key))
}
