//! The `hostKey` login: throttle, verify Django's hash off the executor, mint a key.

use std::net::IpAddr;

use crate::auth::{django_password, host_key};
use crate::db::login_failures::ThrottleScope;
use crate::db::now_secs;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Many users can share an address behind NAT, so the per-IP budget is wider.
const IP_BUDGET_MULTIPLIER: i64 = 5;

/// Checks the credentials and returns a fresh host key.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    client_ip: IpAddr,
    client_version: &str,
) -> ApiResult<String> {
    let db = &state.db;
    let now = now_secs();
    let window = state.settings.login_window_secs as i64;
    let max_failures = i64::from(state.settings.login_max_failures);
    let ip = client_ip.to_string();
    // Usernames differ only by case in attacks that try variants; count them together.
    let user_subject = username.to_lowercase();

    let user_failures = db
        .login_failures(ThrottleScope::Username, &user_subject, now, window)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let ip_failures = db
        .login_failures(ThrottleScope::ClientIp, &ip, now, window)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    if user_failures >= max_failures || ip_failures >= max_failures * IP_BUDGET_MULTIPLIER {
        tracing::warn!(username = %username, ip = %ip, user_failures, ip_failures, "login throttled");
        crate::metrics::login_failure("throttled");
        return Err(ApiError::TooManyRequests(
            "too many failed logins; try again later".into(),
        ));
    }

    let user = db
        .find_user_by_username(username)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;

    let password_owned = password.to_string();
    let verified = match &user {
        Some(user) if user.is_active => {
            let encoded = user.password.clone();
            tokio::task::spawn_blocking(move || {
                django_password::verify_password(&password_owned, &encoded)
            })
            .await?
        }
        _ => {
            // Same cost as a real check, so response time does not tell which usernames exist
            // or are inactive.
            tokio::task::spawn_blocking(move || {
                django_password::burn_dummy_verification(&password_owned)
            })
            .await?;
            false
        }
    };

    let Some(user) = user.filter(|_| verified) else {
        for (scope, subject) in [
            (ThrottleScope::Username, user_subject.as_str()),
            (ThrottleScope::ClientIp, ip.as_str()),
        ] {
            db.record_login_failure(scope, subject, now, window)
                .await
                .map_err(|err| ApiError::Internal(err.into()))?;
        }
        tracing::info!(username = %username, ip = %ip, "login failed");
        crate::metrics::login_failure("bad_credentials");
        return Err(ApiError::Forbidden("invalid username or password".into()));
    };

    db.clear_login_failures(ThrottleScope::Username, &user_subject)
        .await
        .map_err(|err| ApiError::Internal(err.into()))?;
    let key = host_key::mint();
    db.insert_host_key(
        &host_key::digest(&key),
        user.id,
        &host_key::password_fingerprint(&user.password),
        client_version,
        now,
    )
    .await
    .map_err(|err| ApiError::Internal(err.into()))?;
    tracing::info!(user_id = user.id, ip = %ip, "login succeeded, host key issued");
    Ok(key)
}
