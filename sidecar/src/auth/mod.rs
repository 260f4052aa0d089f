//! Who is calling: Django password checks, host keys, login throttling, and the extractors
//! that make a handler authenticated by its signature alone.

pub mod client_ip;
pub mod credentials;
pub mod django_password;
pub mod extractor;
pub mod hash_pool;
pub mod host_key;
pub mod login;
pub mod revocation;
pub mod throttle;

pub use client_ip::ClientIp;
pub use extractor::AuthedUser;
