//! Host keys: random, handed to the client once, stored only as a SHA-256 digest.

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// 256 random bits, hex-encoded: opaque ASCII, as the client expects
/// (docs/sync-protocol.md#login-and-host-keys).
pub fn mint() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What is stored and looked up: a key's SHA-256. A fast hash is enough because the key is
/// 256 random bits, not a password.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A fingerprint of Django's password column. When the password changes (or Django marks it
/// unusable), the fingerprint stops matching and every key minted before is refused.
pub fn password_fingerprint(encoded_password: &str) -> String {
    hex::encode(Sha256::digest(encoded_password.as_bytes()))
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hex() {
        let a = mint();
        let b = mint();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn digests_are_stable_and_do_not_reveal_the_key() {
        let key = mint();
        assert_eq!(digest(&key), digest(&key));
        assert_ne!(digest(&key), key);
    }

    #[test]
    fn fingerprints_change_with_the_password() {
        assert_ne!(
            password_fingerprint("pbkdf2_sha256$1$a$b"),
            password_fingerprint("pbkdf2_sha256$1$a$c")
        );
        assert!(constant_time_eq("abc", "abc"));
        assert!(!constant_time_eq("abc", "abd"));
        assert!(!constant_time_eq("abc", "ab"));
    }
}
