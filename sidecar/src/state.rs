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
    pub fn body_limits(&self) -> BodyLimits {
        BodyLimits {
            max_compressed: self.settings.max_body_bytes(),
            max_uncompressed: self.settings.max_uncompressed_bytes(),
        }
    }
}
