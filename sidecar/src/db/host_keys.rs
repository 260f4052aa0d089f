//! Stored host keys: only their SHA-256, the owner, and a fingerprint of the owner's password
//! column at the time of login.

use sqlx::Row;

use super::Arg::{Int, Text};
use super::{Database, UserTable, with_pool};
use crate::db::users::DjangoUser;

/// A stored key joined with its owner's current Django row.
#[derive(Clone, Debug)]
pub struct StoredHostKey {
    pub password_fingerprint: String,
    pub last_used_at: i64,
    pub user: DjangoUser,
}

impl Database {
    pub async fn insert_host_key(
        &self,
        key_hash: &str,
        user_id: i64,
        password_fingerprint: &str,
        client_version: &str,
        now: i64,
    ) -> sqlx::Result<()> {
        let sql = "INSERT INTO sidecar_host_keys \
                   (key_hash, user_id, password_fingerprint, client_version, created_at, last_used_at) \
                   VALUES ($1, $2, $3, $4, $5, $6)";
        let args = [
            Text(key_hash),
            Int(user_id),
            Text(password_fingerprint),
            Text(client_version),
            Int(now),
            Int(now),
        ];
        self.execute(sql, &args).await?;
        Ok(())
    }

    /// The key and its owner, or None when the key is unknown or its user is gone. On SQLite
    /// it is read without sqlx's thread when that read can go ahead at once (`db::direct`).
    pub async fn find_host_key(&self, key_hash: &str) -> sqlx::Result<Option<StoredHostKey>> {
        let sql = &self.users.statements.find_host_key;
        if let Some(found) = self
            .direct
            .as_ref()
            .and_then(|direct| direct.find_host_key(sql, key_hash))
        {
            return Ok(found);
        }
        self.find_host_key_through_sqlx(key_hash).await
    }

    /// [`Self::find_host_key`] through the pool, which waits for a busy database.
    pub(crate) async fn find_host_key_through_sqlx(
        &self,
        key_hash: &str,
    ) -> sqlx::Result<Option<StoredHostKey>> {
        let sql = &self.users.statements.find_host_key;
        let found = with_pool!(self, |pool| {
            let row = sqlx::query(sql).bind(key_hash).fetch_optional(pool).await?;
            row.map(|row| -> sqlx::Result<StoredHostKey> {
                Ok(StoredHostKey {
                    password_fingerprint: row.try_get("password_fingerprint")?,
                    last_used_at: row.try_get("last_used_at")?,
                    user: DjangoUser {
                        id: row.try_get("id")?,
                        username: row.try_get("username")?,
                        password: row.try_get("password")?,
                        is_active: row.try_get::<i64, _>("is_active")? != 0,
                    },
                })
            })
            .transpose()
        })?;
        Ok(found)
    }

    pub async fn touch_host_key(&self, key_hash: &str, now: i64) -> sqlx::Result<()> {
        let sql = "UPDATE sidecar_host_keys SET last_used_at = $1 WHERE key_hash = $2";
        self.execute(sql, &[Int(now), Text(key_hash)]).await?;
        Ok(())
    }

    pub async fn delete_host_key(&self, key_hash: &str) -> sqlx::Result<()> {
        let sql = "DELETE FROM sidecar_host_keys WHERE key_hash = $1";
        self.delete_keys(sql, &[Text(key_hash)]).await?;
        Ok(())
    }

    /// Logs the user out of every device. Returns how many keys were revoked.
    pub async fn delete_host_keys_of_user(&self, user_id: i64) -> sqlx::Result<u64> {
        let sql = "DELETE FROM sidecar_host_keys WHERE user_id = $1";
        self.delete_keys(sql, &[Int(user_id)]).await
    }

    /// Every deletion of host keys goes through here: whatever it deleted (even when it
    /// failed partway), the keys remembered as verified are voided.
    async fn delete_keys(&self, sql: &str, args: &[super::Arg<'_>]) -> sqlx::Result<u64> {
        let done = self.execute(sql, args).await;
        self.verified.revoked();
        done
    }
}

/// The statement of [`Database::find_host_key`] for `users`' names.
pub(super) fn find_host_key_sql(users: &UserTable) -> String {
    format!(
        "SELECT k.password_fingerprint AS password_fingerprint, k.last_used_at AS last_used_at, \
         CAST(u.{id} AS BIGINT) AS id, u.{username} AS username, u.{password} AS password, \
         CAST(CASE WHEN u.{active} THEN 1 ELSE 0 END AS BIGINT) AS is_active \
         FROM sidecar_host_keys k JOIN {table} u ON u.{id} = k.user_id \
         WHERE k.key_hash = $1",
        id = users.id,
        username = users.username,
        password = users.password,
        active = users.active,
        table = users.table,
    )
}

impl Database {
    /// How many devices hold a key, and when one was last used (seconds; None if never).
    pub async fn host_key_summary(&self, user_id: i64) -> sqlx::Result<(i64, Option<i64>)> {
        let summary: (i64, Option<i64>) = with_pool!(self, |pool| sqlx::query_as(
            "SELECT COUNT(*), MAX(last_used_at) FROM sidecar_host_keys WHERE user_id = $1"
        )
        .bind(user_id)
        .fetch_one(pool)
        .await)?;
        Ok(summary)
    }
}

impl Database {
    /// Deletes the keys of every user who is inactive or no longer in Django's table.
    /// Returns how many keys went.
    pub async fn delete_host_keys_of_inactive_users(&self) -> sqlx::Result<u64> {
        let t = &self.users;
        let sql = format!(
            "DELETE FROM sidecar_host_keys WHERE user_id NOT IN \
             (SELECT CAST({id} AS BIGINT) FROM {table} WHERE {active})",
            id = t.id,
            table = t.table,
            active = t.active,
        );
        self.delete_keys(&sql, &[]).await
    }
}
