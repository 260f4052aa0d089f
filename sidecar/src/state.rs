//! The one context shared by every handler.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Database;
use crate::storage::DataDir;
use crate::user_data::Users;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub data: DataDir,
    /// Every operation on a user's collection, media and imports goes through here.
    pub users: Users,
}
