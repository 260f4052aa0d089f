//! One way for an error type to file the errors of the layers below it (the file system,
//! SQLite, the database, JSON) under its `Internal(anyhow::Error)` variant. A module of its own,
//! so that the error types of every layer can use it without depending on each other.

/// `From` impls that file errors of the layers below (the file system, SQLite, the database,
/// JSON) under the `Internal(anyhow::Error)` variant of an error type.
macro_rules! internal_from {
    ($target:ty: $($source:ty),+ $(,)?) => {$(
        impl From<$source> for $target {
            fn from(err: $source) -> Self {
                Self::Internal(err.into())
            }
        }
    )+};
}
pub(crate) use internal_from;
