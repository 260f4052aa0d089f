//! Notes matched by GUID (docs/sync-protocol.md#imported-notes): planned first, so the media step
//! knows which files the written notes use, then written with media references rewritten.

use std::collections::{HashMap, HashSet};

use rusqlite::Connection;
use serde_json::Value;
use unicase::UniCase;
use unicode_normalization::UnicodeNormalization;

use super::notetypes::NotetypeOutcome;
use super::source::SourceNote;
use super::{ImportError, ids, media_refs};
use crate::collection::json::ColObjects;
use crate::collection::rows::{NoteRow, Table, all_ids};
use crate::note_text::{FIELD_SEPARATOR, derived_columns, remove_invalid_chars};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoteAction {
    Add,
    /// The user has the GUID under the same notetype and the package's copy is newer.
    Update,
    /// The user has the GUID and the package's copy is not newer: left alone.
    Duplicate,
    /// The user has the GUID under another notetype: skipped with its cards.
    Conflict,
}

#[derive(Debug, Clone)]
pub struct PlannedNote {
    pub source: SourceNote,
    pub action: NoteAction,
    /// The user's note id (for Conflict, the conflicting note's).
    pub target_id: i64,
    pub target_notetype: i64,
}

/// Scheduling markers that an import without scheduling drops (docs/sync-protocol.md#merge-rules).
const DROPPED_TAGS: [&str; 2] = ["marked", "leech"];

/// Decides what happens to each package note. Writes nothing.
pub fn plan(
    conn: &Connection,
    notes: &[SourceNote],
    notetypes: &NotetypeOutcome,
    now_ms: i64,
) -> Result<Vec<PlannedNote>, ImportError> {
    let mut by_guid: HashMap<String, (i64, i64, i64)> = HashMap::new();
    {
        let mut statement = conn.prepare("SELECT guid, id, mid, mod FROM notes")?;
        let rows = statement.query_map([], |row| {
            Ok((
                row.get::<_, String>(0)?,
                (row.get(1)?, row.get(2)?, row.get(3)?),
            ))
        })?;
        for row in rows {
            let (guid, note) = row?;
            by_guid.insert(guid, note);
        }
    }
    // Ids already used, including those this import claims as it goes.
    let mut claimed: HashSet<i64> = all_ids(conn, Table::Notes)?;
    let mut planned = Vec::with_capacity(notes.len());
    for note in notes {
        let target_notetype = notetypes.ids[&note.notetype_id];
        let shape = notetypes.shapes[&target_notetype];
        let field_count = note.fields.split(FIELD_SEPARATOR).count();
        if field_count != shape.field_count {
            return Err(ImportError::BadPackage(format!(
                "note {} has {field_count} fields but its notetype has {}",
                note.id, shape.field_count
            )));
        }
        let (action, target_id) = match by_guid.get(&note.guid) {
            Some(&(id, mid, _)) if mid != target_notetype => (NoteAction::Conflict, id),
            Some(&(id, _, mtime)) if note.mtime > mtime => (NoteAction::Update, id),
            Some(&(id, _, _)) => (NoteAction::Duplicate, id),
            None => {
                let taken = |id: i64| claimed.contains(&id);
                let id = ids::resolve(note.id, now_ms, || ids::fresh(now_ms, taken), taken);
                claimed.insert(id);
                // A GUID repeated inside the package is a duplicate of its first note.
                by_guid.insert(note.guid.clone(), (id, target_notetype, note.mtime));
                (NoteAction::Add, id)
            }
        };
        planned.push(PlannedNote {
            source: note.clone(),
            action,
            target_id,
            target_notetype,
        });
    }
    Ok(planned)
}

/// File names referenced by the notes that will be written, as the package spells them.
pub fn referenced_media(planned: &[PlannedNote]) -> HashSet<String> {
    planned
        .iter()
        .filter(|note| matches!(note.action, NoteAction::Add | NoteAction::Update))
        .flat_map(|note| {
            note.source
                .fields
                .split(FIELD_SEPARATOR)
                .flat_map(media_refs::referenced_names)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The user's spelling of each tag (tags are case-insensitive), registering new ones.
fn canonical_tags(raw: &str, objects: &mut ColObjects, usn: i32) -> String {
    let mut seen: HashSet<UniCase<String>> = HashSet::new();
    let mut tags = Vec::new();
    for tag in raw.split_whitespace() {
        if DROPPED_TAGS
            .iter()
            .any(|dropped| UniCase::new(*dropped) == UniCase::new(tag))
        {
            continue;
        }
        if !seen.insert(UniCase::new(tag.to_string())) {
            continue;
        }
        let existing = objects
            .tags
            .keys()
            .find(|known| UniCase::new(known.as_str()) == UniCase::new(tag))
            .cloned();
        match existing {
            Some(known) => tags.push(known),
            None => {
                objects.register_tag(tag, usn);
                tags.push(tag.to_string());
            }
        }
    }
    if tags.is_empty() {
        String::new()
    } else {
        format!(" {} ", tags.join(" "))
    }
}

fn prepared_fields(raw: &str, renames: &HashMap<String, String>, normalize: bool) -> String {
    // References are rewritten before normalizing, since renames are keyed by the package's
    // own spelling of each name.
    let rewritten = remove_invalid_chars(raw)
        .split(FIELD_SEPARATOR)
        .map(|field| media_refs::rewrite(field, renames))
        .collect::<Vec<_>>()
        .join(&FIELD_SEPARATOR.to_string());
    if normalize {
        rewritten.nfc().collect()
    } else {
        rewritten
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct NoteCounts {
    pub added: usize,
    pub updated: usize,
    pub skipped: usize,
}

/// Writes added and updated notes with the server's usn.
pub fn write(
    conn: &Connection,
    planned: &[PlannedNote],
    notetypes: &NotetypeOutcome,
    renames: &HashMap<String, String>,
    objects: &mut ColObjects,
    usn: i32,
) -> Result<NoteCounts, ImportError> {
    // Anki's "normalize_note_text" setting, on unless the user turned it off.
    let normalize = objects
        .conf
        .get("normalize_note_text")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut counts = NoteCounts::default();
    for note in planned {
        if matches!(note.action, NoteAction::Duplicate | NoteAction::Conflict) {
            counts.skipped += 1;
            continue;
        }
        let fields = prepared_fields(&note.source.fields, renames, normalize);
        let shape = notetypes.shapes[&note.target_notetype];
        let (sort_field, checksum) = derived_columns(&fields, shape.sort_field);
        let tags = canonical_tags(&note.source.tags, objects, usn);
        let row = NoteRow {
            id: note.target_id,
            guid: note.source.guid.clone(),
            mid: note.target_notetype,
            modified: note.source.mtime,
            usn: i64::from(usn),
            tags,
            fields,
            flags: 0,
            data: String::new(),
        };
        if note.action == NoteAction::Add {
            row.insert(conn, &sort_field, checksum)?;
            counts.added += 1;
        } else {
            row.update_content(conn, &sort_field, checksum)?;
            counts.updated += 1;
        }
    }
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collection::json::JsonObject;

    #[test]
    fn tags_take_the_users_spelling_and_drop_scheduling_markers() {
        let mut objects = ColObjects {
            models: JsonObject::new(),
            decks: JsonObject::new(),
            dconf: JsonObject::new(),
            conf: JsonObject::new(),
            tags: serde_json::from_value(serde_json::json!({"Verbs": 3})).unwrap(),
        };
        assert_eq!(
            canonical_tags("verbs leech new new Marked", &mut objects, 8),
            " Verbs new "
        );
        assert_eq!(objects.tags["new"], 8);
        assert_eq!(canonical_tags("", &mut objects, 8), "");
    }

    #[test]
    fn fields_are_cleaned_normalized_and_rewritten() {
        let renames = HashMap::from([("a.png".to_string(), "a-1.png".to_string())]);
        let fields = prepared_fields("Cafe\u{301}\u{1}\u{1f}<img src=\"a.png\">", &renames, true);
        assert_eq!(fields, "Caf\u{e9}\u{1f}<img src=\"a-1.png\">");
    }
}
