//! The one context shared by every handler.

use std::sync::Arc;

use crate::config::Settings;
use crate::db::Database;
use crate::registry::Registry;
use crate::storage::DataDir;
use crate::transport::BodyLimits;

#[derive(Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Database,
    pub data: DataDir,
    pub registry: Arc<Registry>,
}

impl AppState {
    /// The caps of JSON calls, the default for any body read into memory. The login, media
    /// uploads and full uploads have their own (`self.settings.limits`).
    pub fn body_limits(&self) -> BodyLimits {
        self.settings.limits.json_body()
    }
}
