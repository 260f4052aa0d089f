//! HTTP handlers, one endpoint per file, named after the protocol method.
//! They translate between wire types and storage; they hold no SQL.

pub mod health;
pub mod internal;
pub mod msync;
pub mod sync;

use serde::Deserialize;

/// The body of argument-less calls: `{"_pad":null}` from current clients, `{}` from older
/// ones. Any other key is refused, as on the official server (protocol §1.2).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyInput {
    #[serde(rename = "_pad", default)]
    _pad: Option<serde_json::Value>,
}
