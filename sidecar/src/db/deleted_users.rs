//! Which users have host-key rows, for finding the rows of users deleted in Django.

use super::{Database, with_pool};

impl Database {
    /// The distinct owners of stored host keys, ascending.
    pub async fn host_key_user_ids(&self) -> sqlx::Result<Vec<i64>> {
        let rows: Vec<(i64,)> = with_pool!(self, |pool| sqlx::query_as(
            "SELECT DISTINCT CAST(user_id AS BIGINT) FROM sidecar_host_keys ORDER BY 1"
        )
        .fetch_all(pool)
        .await)?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}
