//! Setup that the unit tests of the per-user folders share (and those of the layers above).

use super::{DataDir, UserFiles};

/// A data folder in a new temporary folder, which is kept after the test for inspection.
pub fn temp_data_dir() -> DataDir {
    DataDir::new(tempfile::tempdir().unwrap().keep()).unwrap()
}

/// The files of user `user_id` in a new [`temp_data_dir`].
pub fn temp_user(user_id: i64) -> UserFiles {
    temp_data_dir().user(user_id)
}
