//! The `hostKey` login: check the fields, throttle, verify Django's hash on the hashing threads,
//! mint a key.

use std::net::IpAddr;

use crate::auth::throttle::{self, Counts, Subjects};
use crate::auth::{credentials, django_password, hash_pool, host_key};
use crate::clock::now_secs;
use crate::db::login_failures::ThrottleScope;
use crate::db::users::DjangoUser;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Checks the credentials and returns a fresh host key.
pub async fn login(
    state: &AppState,
    username: &str,
    password: &str,
    client_ip: IpAddr,
    client_version: &str,
) -> ApiResult<String> {
    // Before anything else: nothing oversized is hashed, stored or logged.
    credentials::check_fields(username, password)?;
    let db = &state.db;
    let now = now_secs();
    let window = state.settings.login_window_secs as i64;
    let max_failures = i64::from(state.settings.login_max_failures);
    let subjects = Subjects::new(username, client_ip);
    let shown = credentials::loggable_username(username);
    let ip = client_ip.to_string();

    let counts = throttle_counts(state, &subjects, now, window).await?;
    if let Some(exhausted) = throttle::exhausted(counts, max_failures) {
        tracing::warn!(
            username = %shown,
            ip = %ip,
            budget = %exhausted.as_str(),
            user_failures = counts.user,
            ip_failures = counts.ip,
            pair_failures = counts.user_ip,
            "login throttled"
        );
        crate::metrics::login_failure("throttled");
        return Err(ApiError::TooManyRequests(
            "too many failed logins; try again later".into(),
        ));
    }

    let user = db.find_user_by_username(username).await?;

    let password_owned = password.to_string();
    let checked = user.clone();
    // On the few low-priority hashing threads, so that a burst of logins queues there
    // instead of taking the cores from other users' syncs.
    let verified =
        hash_pool::verify(move || check_password(checked.as_ref(), &password_owned)).await?;

    let Some(user) = user.filter(|_| verified) else {
        for (scope, subject) in [
            (ThrottleScope::Username, subjects.user.as_str()),
            (ThrottleScope::ClientIp, subjects.ip.as_str()),
            (ThrottleScope::UsernameFromIp, subjects.user_ip.as_str()),
        ] {
            db.record_login_failure(scope, subject, now, window).await?;
        }
        tracing::info!(username = %shown, ip = %ip, "login failed");
        crate::metrics::login_failure("bad_credentials");
        return Err(ApiError::Forbidden("invalid username or password".into()));
    };

    // Only this device's pair is cleared: the username-wide count keeps what an attacker
    // elsewhere spent, and this address is now exempt from it anyway.
    db.clear_login_failures(ThrottleScope::UsernameFromIp, &subjects.user_ip)
        .await?;
    db.record_login_success(&subjects.user, &subjects.ip, now)
        .await?;
    let key = host_key::mint();
    db.insert_host_key(
        &host_key::digest(&key),
        user.id,
        &host_key::password_fingerprint(&user.password),
        client_version,
        now,
    )
    .await?;
    tracing::info!(user_id = user.id, ip = %ip, "login succeeded, host key issued");
    Ok(key)
}

async fn throttle_counts(
    state: &AppState,
    subjects: &Subjects,
    now: i64,
    window: i64,
) -> sqlx::Result<Counts> {
    let db = &state.db;
    Ok(Counts {
        user: db
            .login_failures(ThrottleScope::Username, &subjects.user, now, window)
            .await?,
        ip: db
            .login_failures(ThrottleScope::ClientIp, &subjects.ip, now, window)
            .await?,
        user_ip: db
            .login_failures(
                ThrottleScope::UsernameFromIp,
                &subjects.user_ip,
                now,
                window,
            )
            .await?,
        trusted_address: db
            .login_succeeded_from(
                &subjects.user,
                &subjects.ip,
                now - throttle::TRUSTED_FOR_SECS,
            )
            .await?,
    })
}

/// True when `user` exists, is active and `password` matches their hash. Every outcome runs
/// exactly one key derivation: the user's own hash when it is active and verifiable, else
/// the dummy at Django's default cost. So an unknown user, an inactive one, an unusable
/// password (`!...`, e.g. social login only) and a wrong password cost the same, and the
/// answer time does not tell which accounts exist. Blocking: run it on the blocking pool.
pub fn check_password(user: Option<&DjangoUser>, password: &str) -> bool {
    let own_hash = user
        .filter(|user| user.is_active)
        .map(|user| user.password.as_str())
        .filter(|encoded| django_password::is_verifiable(encoded));
    let matched = django_password::verify_password(
        password,
        own_hash.unwrap_or(django_password::dummy_encoded()),
    );
    own_hash.is_some() && matched
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::django_password::{dummy_encoded, kdf_log};

    /// `secret`, PBKDF2-SHA256 at 1000 iterations (made by Django).
    const SECRET_HASH: &str =
        "pbkdf2_sha256$1000$fixedsalt0123456$LtDxXBUkRZQftI9lcNBk4rG26Gphvp7JAPmBY3fMsG4=";

    fn user(password: &str, is_active: bool) -> DjangoUser {
        DjangoUser {
            id: 1,
            username: "alice".into(),
            password: password.into(),
            is_active,
        }
    }

    #[test]
    fn every_failed_login_runs_one_derivation_at_full_cost() {
        let cases = [
            ("unknown user", None, "secret"),
            ("inactive user", Some(user(SECRET_HASH, false)), "secret"),
            (
                "unusable password",
                Some(user("!Mj3v2mH4xQd9Zr8aL0pUe1sWk7yTn5bVc6fGh2iJ", true)),
                "secret",
            ),
            ("empty password column", Some(user("", true)), "secret"),
            (
                "malformed hash",
                Some(user("pbkdf2_sha256$0$salt$hash", true)),
                "secret",
            ),
            (
                "legacy unsalted md5",
                Some(user("md5$$5ebe2294ecd0e0f08eab7690d2a6ee69", true)),
                "secret",
            ),
        ];
        for (name, user, password) in cases {
            kdf_log::take();
            assert!(!check_password(user.as_ref(), password), "{name}");
            assert_eq!(kdf_log::take(), [dummy_encoded()], "{name}");
        }
        // A wrong password for a real account runs that account's own hash, once.
        let alice = user(SECRET_HASH, true);
        kdf_log::take();
        assert!(!check_password(Some(&alice), "wrong"));
        assert_eq!(kdf_log::take(), [SECRET_HASH]);
        assert!(check_password(Some(&alice), "secret"));
        assert_eq!(kdf_log::take(), [SECRET_HASH]);
    }
}
