//! Cards of imported notes (docs/sync-protocol.md#imported-cards), without scheduling: each arrives
//! as a new card at the end of the user's new queue. Existing cards are never changed.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, params};
use serde_json::json;

use super::notes::{NoteAction, PlannedNote};
use super::notetypes::NotetypeOutcome;
use super::source::SourceCard;
use super::{ImportError, ids};
use crate::collection::json::{ColObjects, as_i64_lenient};
use crate::collection::rows::{CardRow, Table, all_ids};

const QUEUE_SUSPENDED: i64 = -1;
const CARD_TYPE_NEW: i64 = 0;

/// Writes the cards whose note was imported (added, updated or left as a duplicate) and that
/// the user does not have yet. Returns how many were added.
#[allow(clippy::too_many_arguments)]
pub fn write(
    conn: &Connection,
    cards: &[SourceCard],
    planned: &[PlannedNote],
    notetypes: &NotetypeOutcome,
    decks: &HashMap<i64, i64>,
    objects: &mut ColObjects,
    usn: i32,
    now_ms: i64,
) -> Result<usize, ImportError> {
    let notes: HashMap<i64, &PlannedNote> = planned
        .iter()
        .filter(|note| note.action != NoteAction::Conflict)
        .map(|note| (note.source.id, note))
        .collect();

    // New cards keep the package's order: by position, then note, then template.
    let mut ordered: Vec<&SourceCard> = cards
        .iter()
        .filter(|card| notes.contains_key(&card.note_id))
        .collect();
    ordered.sort_by_key(|card| {
        let position = if card.card_type == CARD_TYPE_NEW {
            card.due
        } else {
            i64::MAX
        };
        (position, card.note_id, card.ordinal)
    });

    let mut next_position = objects
        .conf
        .get("nextPos")
        .and_then(as_i64_lenient)
        .unwrap_or(1)
        .max(1);
    let mut positions: HashMap<i64, i64> = HashMap::new();
    let mut existing = conn.prepare("SELECT 1 FROM cards WHERE nid = ?1 AND ord = ?2")?;
    let mut claimed = all_ids(conn, Table::Cards)?;
    let mut written: HashSet<(i64, i64)> = HashSet::new();
    let mut added = 0;
    let now_secs = now_ms / 1000;
    for card in ordered {
        let note = notes[&card.note_id];
        let shape = notetypes.shapes[&note.target_notetype];
        let valid_ordinal =
            card.ordinal >= 0 && (shape.is_cloze || (card.ordinal as usize) < shape.template_count);
        if !valid_ordinal {
            return Err(ImportError::BadPackage(format!(
                "card {} uses template {} that its notetype lacks",
                card.id, card.ordinal
            )));
        }
        let key = (note.target_id, card.ordinal);
        if written.contains(&key) || existing.exists(params![key.0, key.1])? {
            continue;
        }
        let taken = |id: i64| claimed.contains(&id);
        let id = ids::resolve(card.id, now_ms, || ids::fresh(now_ms, taken), taken);
        claimed.insert(id);
        let position = *positions.entry(note.target_id).or_insert_with(|| {
            let position = next_position;
            next_position += 1;
            position
        });
        let queue = if card.queue == QUEUE_SUSPENDED {
            QUEUE_SUSPENDED
        } else {
            0
        };
        let deck = decks.get(&card.deck_id).copied().unwrap_or(1);
        CardRow {
            id,
            nid: note.target_id,
            did: deck,
            ord: card.ordinal,
            modified: now_secs,
            usn: i64::from(usn),
            kind: 0,
            queue,
            due: position,
            ivl: 0,
            factor: 0,
            reps: 0,
            lapses: 0,
            left: 0,
            odue: 0,
            odid: 0,
            flags: 0,
            data: "{}".into(),
        }
        .insert(conn)?;
        written.insert(key);
        added += 1;
    }
    if added > 0 {
        objects.conf.insert("nextPos".into(), json!(next_position));
    }
    Ok(added)
}
