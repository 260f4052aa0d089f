//! Counters of failed logins, per username and per client IP, in fixed windows.

use super::{Database, with_pool};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleScope {
    Username,
    ClientIp,
}

impl ThrottleScope {
    fn as_str(self) -> &'static str {
        match self {
            Self::Username => "user",
            Self::ClientIp => "ip",
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
        with_pool!(self, |pool| sqlx::query(sql)
            .bind(scope.as_str())
            .bind(subject)
            .bind(now)
            .bind(now - window_secs)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn clear_login_failures(
        &self,
        scope: ThrottleScope,
        subject: &str,
    ) -> sqlx::Result<()> {
        with_pool!(self, |pool| sqlx::query(
            "DELETE FROM sidecar_login_failures WHERE scope = $1 AND subject = $2"
        )
        .bind(scope.as_str())
        .bind(subject)
        .execute(pool)
        .await
        .map(|_| ()))?;
        Ok(())
    }
}
