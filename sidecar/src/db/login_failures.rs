//! Counters of failed logins in fixed windows, per username, per client address and per
//! (username, address) pair, and the addresses each username last logged in from. The rule
//! that reads them is in `auth::throttle`.

use super::Arg::{Int, Text};
use super::{Database, with_pool};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleScope {
    Username,
    ClientIp,
    /// Subject `<address> <username>`.
    UsernameFromIp,
}

impl ThrottleScope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Username => "user",
            Self::ClientIp => "ip",
            Self::UsernameFromIp => "user_ip",
        }
    }
}

impl Database {
    /// Failures counted in the window that is still open at `now`.
    pub async fn login_failures(
        &self,
        scope: ThrottleScope,
        subject: &str,
        now: i64,
        window_secs: i64,
    ) -> sqlx::Result<i64> {
        let count: Option<i64> = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT failures FROM sidecar_login_failures \
             WHERE scope = $1 AND subject = $2 AND window_started_at > $3"
        )
        .bind(scope.as_str())
        .bind(subject)
        .bind(now - window_secs)
        .fetch_optional(pool)
        .await)?;
        Ok(count.unwrap_or(0))
    }

    /// Counts one failure; an expired window starts over at one.
    pub async fn record_login_failure(
        &self,
        scope: ThrottleScope,
        subject: &str,
        now: i64,
        window_secs: i64,
    ) -> sqlx::Result<()> {
        let sql = "INSERT INTO sidecar_login_failures (scope, subject, failures, window_started_at) \
                   VALUES ($1, $2, 1, $3) \
                   ON CONFLICT (scope, subject) DO UPDATE SET \
                   failures = CASE WHEN sidecar_login_failures.window_started_at > $4 \
                       THEN sidecar_login_failures.failures + 1 ELSE 1 END, \
                   window_started_at = CASE WHEN sidecar_login_failures.window_started_at > $4 \
                       THEN sidecar_login_failures.window_started_at ELSE $3 END";
        let args = [
            Text(scope.as_str()),
            Text(subject),
            Int(now),
            Int(now - window_secs),
        ];
        self.execute(sql, &args).await?;
        Ok(())
    }

    pub async fn clear_login_failures(
        &self,
        scope: ThrottleScope,
        subject: &str,
    ) -> sqlx::Result<()> {
        let sql = "DELETE FROM sidecar_login_failures WHERE scope = $1 AND subject = $2";
        self.execute(sql, &[Text(scope.as_str()), Text(subject)])
            .await?;
        Ok(())
    }

    /// True when `username` (as throttling keys it) logged in successfully from `address`
    /// after `since`.
    pub async fn login_succeeded_from(
        &self,
        username: &str,
        address: &str,
        since: i64,
    ) -> sqlx::Result<bool> {
        let found: Option<i64> = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT last_success_at FROM sidecar_login_successes \
             WHERE subject = $1 AND address = $2 AND last_success_at > $3"
        )
        .bind(username)
        .bind(address)
        .bind(since)
        .fetch_optional(pool)
        .await)?;
        Ok(found.is_some())
    }

    pub async fn record_login_success(
        &self,
        username: &str,
        address: &str,
        now: i64,
    ) -> sqlx::Result<()> {
        let sql = "INSERT INTO sidecar_login_successes (subject, address, last_success_at) \
                   VALUES ($1, $2, $3) \
                   ON CONFLICT (subject, address) DO UPDATE SET last_success_at = $4";
        let args = [Text(username), Text(address), Int(now), Int(now)];
        self.execute(sql, &args).await?;
        Ok(())
    }

    /// Deletes failure counters whose window closed before `failures_before` and remembered
    /// successes older than `successes_before`, so that neither table grows without bound.
    /// Returns how many rows went.
    pub async fn expire_login_rows(
        &self,
        failures_before: i64,
        successes_before: i64,
    ) -> sqlx::Result<u64> {
        let failures = self
            .execute(
                "DELETE FROM sidecar_login_failures WHERE window_started_at <= $1",
                &[Int(failures_before)],
            )
            .await?;
        let successes = self
            .execute(
                "DELETE FROM sidecar_login_successes WHERE last_success_at <= $1",
                &[Int(successes_before)],
            )
            .await?;
        Ok(failures + successes)
    }
}
