//! Read-only access to Django's user table.

use sqlx::Row;

use super::{Arg, Database, UserTable, bind, with_pool};

/// The columns of a Django user that the sidecar needs.
#[derive(Clone, Debug)]
pub struct DjangoUser {
    pub id: i64,
    pub username: String,
    /// Django's encoded password string, e.g. `pbkdf2_sha256$1000000$salt$hash`.
    pub password: String,
    pub is_active: bool,
}

impl std::fmt::Display for DjangoUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (id {})", self.username, self.id)
    }
}

impl Database {
    /// Django usernames are case-sensitive by default, so the match is exact.
    pub async fn find_user_by_username(&self, username: &str) -> sqlx::Result<Option<DjangoUser>> {
        let sql = &self.users.statements.user_by_username;
        self.find_user_where(sql, Arg::Text(username)).await
    }

    pub async fn find_user_by_id(&self, id: i64) -> sqlx::Result<Option<DjangoUser>> {
        let sql = &self.users.statements.user_by_id;
        self.find_user_where(sql, Arg::Int(id)).await
    }

    /// The user that `sql` (from [`user_where_sql`]) finds for `value`, if any.
    async fn find_user_where(&self, sql: &str, value: Arg<'_>) -> sqlx::Result<Option<DjangoUser>> {
        with_pool!(self, |pool| bind(sqlx::query(sql), &[value])
            .fetch_optional(pool)
            .await
            .and_then(|row| row.map(|row| user_from_row(&row)).transpose()))
    }
}

/// The user whose `column` (one of `users`' quoted names) equals `$1`.
pub(super) fn user_where_sql(users: &UserTable, column: &str) -> String {
    let select = format!(
        "SELECT CAST({id} AS BIGINT) AS id, {username} AS username, {password} AS password, \
         CAST(CASE WHEN {active} THEN 1 ELSE 0 END AS BIGINT) AS is_active FROM {table}",
        id = users.id,
        username = users.username,
        password = users.password,
        active = users.active,
        table = users.table,
    );
    format!("{select} WHERE {column} = $1")
}

fn user_from_row<R: Row>(row: &R) -> sqlx::Result<DjangoUser>
where
    for<'a> &'a str: sqlx::ColumnIndex<R>,
    for<'a> i64: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
    for<'a> String: sqlx::Decode<'a, R::Database> + sqlx::Type<R::Database>,
{
    Ok(DjangoUser {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        password: row.try_get("password")?,
        is_active: row.try_get::<i64, _>("is_active")? != 0,
    })
}
