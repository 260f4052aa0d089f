//! The fields of a login, checked before any hashing, database work or logging, and the short
//! form of a username that log lines carry. See docs/operations.md, "Login throttling".

use crate::error::ApiError;

/// Django's `AbstractUser.username` is a `CharField(max_length=150)`: no real account has a
/// longer name, so a longer one is refused before it reaches the database or a log line.
pub const MAX_USERNAME_CHARS: usize = 150;

/// Far above any password a person or a password manager uses, and small enough that a hash
/// over it costs nothing extra. (PBKDF2 hashes the password once per iteration as the HMAC
/// key, which is first reduced to one block, so the length barely matters; bcrypt only reads
/// 72 bytes.)
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// How many characters of a username a log line shows.
pub const LOGGED_USERNAME_CHARS: usize = 32;

/// Refuses usernames and passwords no real account can have, with a 400.
pub fn check_fields(username: &str, password: &str) -> Result<(), ApiError> {
    // The byte length bounds the character count from above (4 bytes per char at most), so
    // the count below never walks a huge string.
    if username.len() > MAX_USERNAME_CHARS * 4 || username.chars().count() > MAX_USERNAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "username longer than {MAX_USERNAME_CHARS} characters"
        )));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::bad_request(format!(
            "password longer than {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    Ok(())
}

/// A username as log lines show it: at most [`LOGGED_USERNAME_CHARS`] characters, control
/// characters replaced, and `…` when cut, so that no login can write much or forge lines.
pub fn loggable_username(username: &str) -> String {
    let mut shown: String = username
        .chars()
        .take(LOGGED_USERNAME_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if username.chars().nth(LOGGED_USERNAME_CHARS).is_some() {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_credentials_pass() {
        assert!(check_fields("alice", "secret").is_ok());
        assert!(check_fields(&"é".repeat(MAX_USERNAME_CHARS), &"p".repeat(4096)).is_ok());
        assert!(check_fields("", "").is_ok());
    }

    #[test]
    fn oversized_credentials_get_400() {
        for (username, password) in [
            ("a".repeat(MAX_USERNAME_CHARS + 1), "x".to_string()),
            ("é".repeat(MAX_USERNAME_CHARS + 1), "x".to_string()),
            ("a".repeat(10_000_000), "x".to_string()),
            ("alice".to_string(), "p".repeat(MAX_PASSWORD_BYTES + 1)),
        ] {
            let err = check_fields(&username, &password).unwrap_err();
            assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
        }
    }

    #[test]
    fn logged_usernames_are_short_and_single_line() {
        assert_eq!(loggable_username("alice"), "alice");
        let long = "b".repeat(MAX_USERNAME_CHARS);
        let shown = loggable_username(&long);
        assert_eq!(shown.chars().count(), LOGGED_USERNAME_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(loggable_username("a\nb\x1b[31m"), "a\u{fffd}b\u{fffd}[31m");
        assert_eq!(
            loggable_username(&"c".repeat(LOGGED_USERNAME_CHARS)).len(),
            32
        );
    }
}
