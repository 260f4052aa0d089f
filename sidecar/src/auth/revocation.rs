//! Deactivation logs out every device for good, whoever deactivates the user and however
//! (Django's admin, the ORM, plain SQL): keys are deleted on the first request that finds the
//! user inactive, and a periodic sweep deletes the keys of every inactive or deleted user. The
//! same sweep expires old login-throttling rows. Guarantees: docs/operations.md, "Logging users
//! out".

use std::time::Duration;

use crate::auth::throttle::TRUSTED_FOR_SECS;
use crate::clock::now_secs;
use crate::error::ApiResult;
use crate::state::AppState;

/// Deletes every host key of a user found inactive.
pub async fn revoke_inactive(state: &AppState, user_id: i64) -> ApiResult<()> {
    let revoked = state.db.delete_host_keys_of_user(user_id).await?;
    tracing::info!(
        user_id,
        revoked,
        "host keys revoked: the account is inactive"
    );
    Ok(())
}

/// One pass of the sweep. Returns (host keys revoked, throttling rows expired).
pub async fn sweep(state: &AppState) -> anyhow::Result<(u64, u64)> {
    let revoked = state.db.delete_host_keys_of_inactive_users().await?;
    if revoked > 0 {
        tracing::info!(
            revoked,
            "host keys revoked: their accounts are inactive or deleted"
        );
    }
    let now = now_secs();
    let window = state.settings.login_window_secs as i64;
    let expired = state
        .db
        .expire_login_rows(now - window, now - TRUSTED_FOR_SECS)
        .await?;
    Ok((revoked, expired))
}

/// Runs [`sweep`] at start and then every `SIDECAR_AUTH_SWEEP_SECS`.
pub fn spawn_sweeper(state: AppState) {
    let period = Duration::from_secs(state.settings.auth_sweep_secs.max(1));
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if let Err(err) = sweep(&state).await {
                tracing::warn!(error = %format!("{err:#}"), "auth sweep failed");
            }
        }
    });
}
