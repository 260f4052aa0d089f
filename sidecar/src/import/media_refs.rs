//! Media references inside note fields: finding the file names a note uses, and rewriting
//! them when an imported file has to be renamed (docs/sync-protocol.md#imported-media).
//!
//! References are `[sound:name]` and the `src`/`data` attribute of `img`, `audio`, `video`,
//! `source` and `object` tags. Names inside HTML attributes may be entity-encoded.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};

static TAG_REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?is)(<(?:img|audio|video|source|object)\b[^>]*?\b(?:src|data)\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s>"']+))"#,
    )
    .expect("valid regex")
});
static SOUND_REFERENCE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[sound:([^\]]+)\]").expect("valid regex"));

fn attribute_value<'a>(captures: &'a Captures<'_>) -> &'a str {
    captures
        .get(2)
        .or_else(|| captures.get(3))
        .or_else(|| captures.get(4))
        .map_or("", |m| m.as_str())
}

fn decode(raw: &str) -> Cow<'_, str> {
    html_escape::decode_html_entities(raw)
}

/// Every file name the field refers to, decoded, in order of appearance.
pub fn referenced_names(field: &str) -> Vec<String> {
    let mut names = Vec::new();
    for captures in TAG_REFERENCE.captures_iter(field) {
        let name = decode(attribute_value(&captures));
        if is_local(&name) {
            names.push(name.into_owned());
        }
    }
    for captures in SOUND_REFERENCE.captures_iter(field) {
        let name = &captures[1];
        if is_local(name) {
            names.push(name.to_string());
        }
    }
    names
}

/// URLs and inline data are not files in the media folder.
fn is_local(name: &str) -> bool {
    !name.is_empty() && !name.contains("://") && !name.starts_with("data:")
}

/// Rewrites references whose (decoded) name is a key of `renames`.
pub fn rewrite<'a>(field: &'a str, renames: &HashMap<String, String>) -> Cow<'a, str> {
    if renames.is_empty() {
        return Cow::Borrowed(field);
    }
    let tags_done = TAG_REFERENCE.replace_all(field, |captures: &Captures<'_>| {
        let raw = attribute_value(captures);
        match renames.get(decode(raw).as_ref()) {
            Some(new_name) => {
                let encoded = html_escape::encode_double_quoted_attribute(new_name);
                format!("{}\"{encoded}\"", &captures[1])
            }
            None => captures[0].to_string(),
        }
    });
    let sounds_done = SOUND_REFERENCE
        .replace_all(&tags_done, |captures: &Captures<'_>| {
            match renames.get(&captures[1]) {
                Some(new_name) => format!("[sound:{new_name}]"),
                None => captures[0].to_string(),
            }
        })
        .into_owned();
    if sounds_done == field {
        Cow::Borrowed(field)
    } else {
        Cow::Owned(sounds_done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_tag_and_sound_references() {
        let field = r#"a <img class="x" src="pic one.png"> <IMG SRC='b&amp;c.jpg'> [sound:say.mp3] <img src=plain.gif> <img src="https://example.com/x.png">"#;
        assert_eq!(
            referenced_names(field),
            vec!["pic one.png", "b&c.jpg", "plain.gif", "say.mp3"]
        );
    }

    #[test]
    fn rewrites_only_the_renamed_files() {
        let renames = HashMap::from([
            ("pic.png".to_string(), "pic-abc.png".to_string()),
            ("say.mp3".to_string(), "say-abc.mp3".to_string()),
        ]);
        let field = r#"<img src="pic.png"><img src="other.png">[sound:say.mp3][sound:keep.mp3]"#;
        assert_eq!(
            rewrite(field, &renames),
            r#"<img src="pic-abc.png"><img src="other.png">[sound:say-abc.mp3][sound:keep.mp3]"#
        );
        assert_eq!(rewrite("no media", &renames), "no media");
    }
}
