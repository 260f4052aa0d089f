//! Media file names (docs/sync-protocol.md#media-file-names). The server accepts only names that
//! Anki clients would leave unchanged when normalizing, so both sides always agree on a file's name
//! and no name can reach outside the media folder.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// The official server's upper bound.
pub const MAX_NAME_BYTES: usize = 255;
/// What clients cut names to when normalizing.
const NORMALIZED_MAX_BYTES: usize = 120;
const MAX_EXTENSION_BYTES: usize = 10;

const FORBIDDEN: &[char] = &['[', ']', '<', '>', ':', '"', '/', '?', '*', '^', '\\', '|'];
const WINDOWS_DEVICES: &[&str] = &[
    "con", "prn", "aux", "nul", "com1", "com2", "com3", "com4", "com5", "com6", "com7", "com8",
    "com9", "lpt1", "lpt2", "lpt3", "lpt4", "lpt5", "lpt6", "lpt7", "lpt8", "lpt9",
];

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("empty media file name")]
    Empty,
    #[error("media file name longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("media file name {0:?} is not allowed")]
    Reserved(String),
    #[error("media file name {0:?} is not in the normalized form clients use")]
    NotNormalized(String),
}

/// The name a client would store this file under. Unassigned code points, which clients
/// also strip, are not detected here (that needs Unicode category tables); such names pass.
pub fn normalize(name: &str) -> Cow<'_, str> {
    let nfc: String = name.nfc().collect();
    let mut cleaned: String = nfc
        .chars()
        .filter(|c| !FORBIDDEN.contains(c) && !c.is_ascii_control())
        .map(|c| if c == '\u{a0}' { ' ' } else { c })
        .collect();
    let lower = cleaned.to_ascii_lowercase();
    if let Some(device) = WINDOWS_DEVICES
        .iter()
        .find(|device| lower == **device || lower.starts_with(&format!("{device}.")))
    {
        cleaned.insert(device.len(), '_');
    }
    if cleaned.ends_with(' ') || cleaned.ends_with('.') {
        cleaned.push('_');
    }
    if cleaned.len() > NORMALIZED_MAX_BYTES {
        cleaned = truncate_keeping_extension(&cleaned);
    }
    if cleaned == name {
        Cow::Borrowed(name)
    } else {
        Cow::Owned(cleaned)
    }
}

fn cut_at_char_boundary(text: &str, max_bytes: usize) -> &str {
    let mut end = max_bytes.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

fn truncate_keeping_extension(name: &str) -> String {
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], Some(&name[dot + 1..])),
        _ => (name, None),
    };
    let mut result = match extension {
        Some(extension) => {
            let extension = cut_at_char_boundary(extension, MAX_EXTENSION_BYTES);
            let stem_budget = NORMALIZED_MAX_BYTES.saturating_sub(extension.len() + 1);
            format!("{}.{extension}", cut_at_char_boundary(stem, stem_budget))
        }
        None => cut_at_char_boundary(stem, NORMALIZED_MAX_BYTES).to_string(),
    };
    if result.ends_with(' ') || result.ends_with('.') {
        result.push('_');
    }
    result
}

/// Checks a name received from a client or a package. Accepted names are single, safe path
/// components.
pub fn validate(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(NameError::TooLong);
    }
    let lower = name.to_lowercase();
    if name == "." || name == ".." || lower == "thumbs.db" || lower == ".ds_store" {
        return Err(NameError::Reserved(name.to_string()));
    }
    if normalize(name) != name {
        return Err(NameError::NotNormalized(name.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for name in ["a.png", "c d.jpg", "ünïcødé 日本.mp3", "_static.css", "x"] {
            assert_eq!(validate(name), Ok(()), "{name}");
        }
    }

    #[test]
    fn refuses_hostile_names() {
        let long = format!("{}.png", "a".repeat(296));
        for name in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "/etc/x",
            "a\\b",
            "nul\0byte",
            "tab\there",
            &long,
            "x:y.png",
            "con.jpg",
            "ends.",
            "ends ",
        ] {
            assert!(validate(name).is_err(), "{name:?} must be refused");
        }
    }

    #[test]
    fn refuses_names_that_are_not_nfc() {
        let decomposed = "e\u{301}.png";
        assert!(validate(decomposed).is_err());
        assert_eq!(validate("\u{e9}.png"), Ok(()));
    }

    #[test]
    fn normalizes_like_clients() {
        assert_eq!(normalize("con.jpg"), "con_.jpg");
        assert_eq!(normalize("a\u{a0}b"), "a b");
        assert_eq!(normalize("q:x.png"), "qx.png");
        let long = format!("{}.extensionlong", "s".repeat(200));
        let normalized = normalize(&long);
        assert!(normalized.len() <= 120);
        assert!(normalized.ends_with(".extensionl"));
    }
}
