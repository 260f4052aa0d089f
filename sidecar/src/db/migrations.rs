//! The migrations of our own `sidecar_*` tables (`sidecar/migrations/<backend>/`), embedded in
//! the binary.
//!
//! This is what `sqlx::migrate!` produces (same versions, descriptions, SQL and so checksums),
//! without its proc macro: that macro needs sqlx's `macros` feature, which compiles a second
//! copy of sqlx and of both database drivers (bundled SQLite included) for the compiler, a large
//! share of a cold build. A test checks that the lists below are exactly the files on disk,
//! parsed the way sqlx parses them, so a new migration file cannot be forgotten here.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{MigrateError, Migration, MigrationSource, MigrationType, Migrator};

/// One migration file: its name (`<version>_<description>.sql`) and its content.
type File = (&'static str, &'static str);

macro_rules! migration_file {
    ($backend:literal, $name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/migrations/",
                $backend,
                "/",
                $name
            )),
        )
    };
}

const SQLITE: &[File] = &[
    migration_file!("sqlite", "20261122000001_sidecar_init.sql"),
    migration_file!("sqlite", "20261130000001_auth_throttling.sql"),
];

const POSTGRES: &[File] = &[
    migration_file!("postgres", "20261122000001_sidecar_init.sql"),
    migration_file!("postgres", "20261130000001_auth_throttling.sql"),
];

pub async fn sqlite() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(SQLITE)).await
}

pub async fn postgres() -> Result<Migrator, MigrateError> {
    Migrator::new(Embedded(POSTGRES)).await
}

#[derive(Debug)]
struct Embedded(&'static [File]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { migrations(self.0) })
    }
}

/// Parses each file name as sqlx does for a migration directory, ordered by version.
fn migrations(files: &[File]) -> Result<Vec<Migration>, BoxDynError> {
    let mut migrations = files
        .iter()
        .map(|&(name, sql)| -> Result<Migration, BoxDynError> {
            let (version, rest) = name
                .split_once('_')
                .ok_or_else(|| format!("migration file name {name:?} has no version prefix"))?;
            let version: i64 = version
                .parse()
                .map_err(|_| format!("migration file name {name:?} has no integer version"))?;
            let migration_type = MigrationType::from_filename(rest);
            let description = rest
                .trim_end_matches(migration_type.suffix())
                .replace('_', " ");
            let no_tx = sql.starts_with("-- no-transaction");
            Ok(Migration::new(
                version,
                Cow::Owned(description),
                migration_type,
                Cow::Borrowed(sql),
                no_tx,
            ))
        })
        .collect::<Result<Vec<_>, BoxDynError>>()?;
    migrations.sort_by_key(|migration| migration.version);
    Ok(migrations)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// The embedded list against sqlx's own reading of the directory (what `migrate!` embeds).
    fn assert_same_as_directory(files: &[File], backend: &str) {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(backend);
        let on_disk = sqlx::migrate::resolve_blocking(&dir).expect("migration directory");
        let embedded = migrations(files).expect("embedded migrations parse");
        let key = |m: &Migration| {
            (
                m.version,
                m.description.to_string(),
                m.migration_type,
                m.sql.to_string(),
                m.checksum.to_vec(),
                m.no_tx,
            )
        };
        let on_disk: Vec<_> = on_disk.iter().map(|(m, _)| key(m)).collect();
        let embedded: Vec<_> = embedded.iter().map(key).collect();
        assert!(
            !on_disk.is_empty(),
            "no migrations found in {}",
            dir.display()
        );
        assert_eq!(
            embedded,
            on_disk,
            "the embedded {backend} migrations differ from the files in {}",
            dir.display()
        );
    }

    #[test]
    fn sqlite_migrations_are_the_files_on_disk() {
        assert_same_as_directory(SQLITE, "sqlite");
    }

    #[test]
    fn postgres_migrations_are_the_files_on_disk() {
        assert_same_as_directory(POSTGRES, "postgres");
    }
}
