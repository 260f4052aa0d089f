//! The derived note columns `sfld` and `csum` (docs/sync-protocol.md#tables). Clients send them as
//! `""`, so the server recomputes them from the fields and the notetype.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;
use sha1::{Digest, Sha1};

pub const FIELD_SEPARATOR: char = '\u{1f}';

static MEDIA_TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)<(?:img|audio|video|object|source)\b[^>]*?\b(?:src|data)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))[^>]*>"#,
    )
    .expect("valid regex")
});
static COMMENT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?s)<!--.*?-->").expect("valid regex"));
static STYLE_OR_SCRIPT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?is)<style\b.*?</style\s*>|<script\b.*?</script\s*>").expect("valid regex")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?s)<.*?>").expect("valid regex"));

fn is_invalid_in_fields(c: char) -> bool {
    c.is_ascii_control() && c != '\n' && c != '\t' && c != FIELD_SEPARATOR
}

/// Drops ASCII control characters other than newline and tab, which Anki strips from
/// incoming fields. Works on joined fields: the separator itself is kept.
pub fn remove_invalid_chars(fields: &str) -> Cow<'_, str> {
    if fields.chars().any(is_invalid_in_fields) {
        Cow::Owned(
            fields
                .chars()
                .filter(|c| !is_invalid_in_fields(*c))
                .collect(),
        )
    } else {
        Cow::Borrowed(fields)
    }
}

/// Plain text of a field, with media file names kept (each wrapped in single spaces).
pub fn strip_html_preserving_media_filenames(html: &str) -> String {
    let with_names = MEDIA_TAG.replace_all(html, |captures: &regex::Captures<'_>| {
        let name = captures
            .get(1)
            .or_else(|| captures.get(2))
            .or_else(|| captures.get(3))
            .map_or("", |m| m.as_str());
        format!(" {name} ")
    });
    let without_comments = COMMENT.replace_all(&with_names, "");
    let without_blocks = STYLE_OR_SCRIPT.replace_all(&without_comments, "");
    let without_tags = TAG.replace_all(&without_blocks, "");
    let spaced = without_tags.replace("&nbsp;", " ");
    html_escape::decode_html_entities(&spaced).into_owned()
}

/// First 4 bytes of the SHA-1 of the first field's plain text, big-endian.
pub fn field_checksum(first_field: &str) -> u32 {
    let digest = Sha1::digest(strip_html_preserving_media_filenames(first_field).as_bytes());
    u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// `sfld` and `csum` for a note's joined fields and its notetype's sort field index.
pub fn derived_columns(joined_fields: &str, sort_field_index: usize) -> (String, u32) {
    let mut fields = joined_fields.split(FIELD_SEPARATOR);
    let first = fields.next().unwrap_or("");
    let sort_source = if sort_field_index == 0 {
        first
    } else {
        joined_fields
            .split(FIELD_SEPARATOR)
            .nth(sort_field_index)
            .unwrap_or("")
    };
    (
        strip_html_preserving_media_filenames(sort_source),
        field_checksum(first),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_observed_worked_example() {
        let field = "hello<img src=\"pic-11ab.png\">";
        assert_eq!(
            strip_html_preserving_media_filenames(field),
            "hello pic-11ab.png "
        );
    }

    #[test]
    fn strips_tags_comments_and_entities() {
        assert_eq!(
            strip_html_preserving_media_filenames(
                "<b>a</b>&nbsp;&amp;<!-- x --><style>p{}</style>b<br>[sound:x.mp3]"
            ),
            "a &b[sound:x.mp3]"
        );
    }

    #[test]
    fn checksum_is_sha1_prefix_of_plain_text() {
        // sha1("hello") = aaf4c61d...
        assert_eq!(field_checksum("<i>hello</i>"), 0xaaf4_c61d);
        let (sfld, csum) = derived_columns("front\u{1f}<u>back</u>", 1);
        assert_eq!(sfld, "back");
        assert_eq!(csum, field_checksum("front"));
    }

    #[test]
    fn removes_control_characters_but_keeps_newlines() {
        assert_eq!(remove_invalid_chars("a\u{1}b\nc\td"), "ab\nc\td");
        assert_eq!(remove_invalid_chars("a\u{1f}b\u{0}"), "a\u{1f}b");
    }
}
