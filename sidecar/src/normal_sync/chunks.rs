//! Row exchange: `chunk` sends the server's pending revlog, cards and notes; `applyChunk`
//! merges the client's (protocol §4.5).

use std::collections::VecDeque;

use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

use super::wire::Chunk;
use super::{OpResult, SyncCounters, SyncOpError};
use crate::collection_json::{ColObjects, as_i64_lenient};
use crate::note_text::{FIELD_SEPARATOR, derived_columns, remove_invalid_chars};

/// Rows per chunk, counted over all three tables together.
pub const CHUNK_SIZE: usize = 250;

/// Ids of the server rows still to be sent, gathered once at the first `chunk` call, i.e.
/// after the client's graves and changes were applied.
#[derive(Debug, Default)]
pub struct PendingRows {
    revlog: VecDeque<i64>,
    cards: VecDeque<i64>,
    notes: VecDeque<i64>,
}

impl PendingRows {
    pub fn gather(conn: &Connection, client_usn: i32) -> OpResult<Self> {
        let ids = |table: &str| -> OpResult<VecDeque<i64>> {
            let mut statement = conn.prepare(&format!(
                "SELECT id FROM {table} WHERE usn >= ?1 ORDER BY id"
            ))?;
            let ids = statement
                .query_map([client_usn], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            Ok(ids)
        };
        Ok(Self {
            revlog: ids("revlog")?,
            cards: ids("cards")?,
            notes: ids("notes")?,
        })
    }
}

/// The next chunk: round-robin revlog, note, card, until full or drained.
pub fn next_chunk(
    conn: &Connection,
    pending: &mut PendingRows,
    counters: &mut SyncCounters,
) -> OpResult<Chunk> {
    let mut chunk = Chunk::default();
    let mut taken = 0;
    while taken < CHUNK_SIZE {
        let before = taken;
        if let Some(id) = pending.revlog.pop_front() {
            chunk.revlog.push(revlog_row(conn, id)?);
            taken += 1;
        }
        if taken < CHUNK_SIZE
            && let Some(id) = pending.notes.pop_front()
        {
            chunk.notes.push(note_row(conn, id)?);
            taken += 1;
        }
        if taken < CHUNK_SIZE
            && let Some(id) = pending.cards.pop_front()
        {
            chunk.cards.push(card_row(conn, id)?);
            taken += 1;
        }
        if taken == before {
            break;
        }
    }
    chunk.done = taken < CHUNK_SIZE;
    counters.revlog_sent += chunk.revlog.len();
    counters.cards_sent += chunk.cards.len();
    counters.notes_sent += chunk.notes.len();
    Ok(chunk)
}

fn revlog_row(conn: &Connection, id: i64) -> OpResult<Vec<Value>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, cid, usn, ease, ivl, lastIvl, factor, time, type FROM revlog WHERE id = ?1",
    )?;
    Ok(statement.query_row([id], |row| {
        (0..9)
            .map(|i| row.get::<_, i64>(i).map(Value::from))
            .collect()
    })?)
}

fn card_row(conn: &Connection, id: i64) -> OpResult<Vec<Value>> {
    let mut statement = conn.prepare_cached(
        "SELECT id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, reps, lapses, \
         left, odue, odid, flags, data FROM cards WHERE id = ?1",
    )?;
    Ok(statement.query_row([id], |row| {
        let mut values: Vec<Value> = (0..17)
            .map(|i| row.get::<_, i64>(i).map(Value::from))
            .collect::<Result<_, _>>()?;
        values.push(Value::from(row.get::<_, String>(17)?));
        Ok(values)
    })?)
}

/// `sfld` and `csum` go out as empty strings, `flags` as 0 and `data` as "" (protocol §4.5):
/// the client recomputes the derived columns and would reject integers there.
fn note_row(conn: &Connection, id: i64) -> OpResult<Vec<Value>> {
    let mut statement =
        conn.prepare_cached("SELECT id, guid, mid, mod, usn, tags, flds FROM notes WHERE id = ?1")?;
    Ok(statement.query_row([id], |row| {
        Ok(vec![
            Value::from(row.get::<_, i64>(0)?),
            Value::from(row.get::<_, String>(1)?),
            Value::from(row.get::<_, i64>(2)?),
            Value::from(row.get::<_, i64>(3)?),
            Value::from(row.get::<_, i64>(4)?),
            Value::from(row.get::<_, String>(5)?),
            Value::from(row.get::<_, String>(6)?),
            Value::from(""),
            Value::from(""),
            Value::from(0),
            Value::from(""),
        ])
    })?)
}

pub struct ApplyContext {
    pub server_usn: i32,
    pub client_usn: i32,
}

fn int_at(row: &[Value], index: usize, what: &str) -> OpResult<i64> {
    row.get(index)
        .and_then(as_i64_lenient)
        .ok_or_else(|| SyncOpError::invalid(format!("{what} row: column {index} is not a number")))
}

fn text_at<'a>(row: &'a [Value], index: usize, what: &str) -> OpResult<&'a str> {
    row.get(index)
        .and_then(Value::as_str)
        .ok_or_else(|| SyncOpError::invalid(format!("{what} row: column {index} is not a string")))
}

fn require_len(row: &[Value], len: usize, what: &str) -> OpResult<()> {
    if row.len() < len {
        return Err(SyncOpError::invalid(format!(
            "{what} row has {} columns, expected {len}",
            row.len()
        )));
    }
    Ok(())
}

/// Whether the server keeps its own row: only when it changed since the client's last sync
/// (`usn >= minUsn`) and is at least as new. Otherwise the incoming row wins.
fn server_copy_wins(existing: Option<(i64, i64)>, incoming_mod: i64, client_usn: i32) -> bool {
    existing.is_some_and(|(existing_mod, existing_usn)| {
        existing_usn >= i64::from(client_usn) && existing_mod >= incoming_mod
    })
}

pub fn apply_chunk(
    conn: &Connection,
    context: &ApplyContext,
    chunk: &Chunk,
    counters: &mut SyncCounters,
) -> OpResult<()> {
    let usn = context.server_usn;

    let mut insert_revlog = conn.prepare_cached(
        "INSERT OR IGNORE INTO revlog (id, cid, usn, ease, ivl, lastIvl, factor, time, type) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    for row in &chunk.revlog {
        require_len(row, 9, "revlog")?;
        let int = |i| int_at(row, i, "revlog");
        let kind = int(8)?;
        insert_revlog.execute(params![
            int(0)?,
            int(1)?,
            usn,
            int(3)?,
            int(4)?,
            int(5)?,
            int(6)?,
            int(7)?,
            if (0..=5).contains(&kind) { kind } else { 0 },
        ])?;
    }
    counters.revlog_received += chunk.revlog.len();

    let mut existing_card = conn.prepare_cached("SELECT mod, usn FROM cards WHERE id = ?1")?;
    let mut upsert_card = conn.prepare_cached(
        "INSERT OR REPLACE INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, \
         factor, reps, lapses, left, odue, odid, flags, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)",
    )?;
    for row in &chunk.cards {
        require_len(row, 18, "card")?;
        let int = |i| int_at(row, i, "card");
        let (id, modified, kind, queue) = (int(0)?, int(4)?, int(6)?, int(7)?);
        if !(0..=3).contains(&kind) || !(-3..=4).contains(&queue) {
            return Err(SyncOpError::invalid(format!(
                "card {id} has invalid type {kind} or queue {queue}"
            )));
        }
        let existing = existing_card
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if server_copy_wins(existing, modified, context.client_usn) {
            continue;
        }
        upsert_card.execute(params![
            id,
            int(1)?,
            int(2)?,
            int(3)?,
            modified,
            usn,
            kind,
            queue,
            int(8)?,
            int(9)?.max(0),
            int(10)?,
            int(11)?,
            int(12)?,
            int(13)?,
            int(14)?,
            int(15)?,
            int(16)?,
            text_at(row, 17, "card")?,
        ])?;
    }
    counters.cards_received += chunk.cards.len();

    if !chunk.notes.is_empty() {
        apply_notes(conn, context, &chunk.notes)?;
    }
    counters.notes_received += chunk.notes.len();
    Ok(())
}

/// Per notetype: the field count a note must have, and the sort field index.
fn notetype_shape(objects: &ColObjects, notetype_id: i64) -> Option<(usize, usize)> {
    let notetype = objects.models.get(&notetype_id.to_string())?.as_object()?;
    let field_count = notetype.get("flds")?.as_array()?.len();
    let sort_field = notetype
        .get("sortf")
        .and_then(as_i64_lenient)
        .unwrap_or(0)
        .max(0) as usize;
    Some((field_count, sort_field))
}

fn apply_notes(conn: &Connection, context: &ApplyContext, rows: &[Vec<Value>]) -> OpResult<()> {
    let objects = ColObjects::load(conn)?;
    let mut existing_note = conn.prepare_cached("SELECT mod, usn FROM notes WHERE id = ?1")?;
    let mut upsert_note = conn.prepare_cached(
        "INSERT OR REPLACE INTO notes (id, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for row in rows {
        require_len(row, 11, "note")?;
        let int = |i| int_at(row, i, "note");
        let (id, notetype_id) = (int(0)?, int(2)?);
        // Note mtimes must be integers; floats are not accepted for notes.
        let modified = row
            .get(3)
            .and_then(Value::as_i64)
            .ok_or_else(|| SyncOpError::invalid(format!("note {id}: mod is not an integer")))?;
        let (field_count, sort_field) = notetype_shape(&objects, notetype_id).ok_or_else(|| {
            SyncOpError::invalid(format!("note {id} is missing notetype {notetype_id}"))
        })?;
        let fields = remove_invalid_chars(text_at(row, 6, "note")?);
        let actual_fields = fields.split(FIELD_SEPARATOR).count();
        if actual_fields != field_count {
            return Err(SyncOpError::invalid(format!(
                "note {id} has {actual_fields} fields, its notetype has {field_count}"
            )));
        }
        let existing = existing_note
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        if server_copy_wins(existing, modified, context.client_usn) {
            continue;
        }
        let (sort_text, checksum) = derived_columns(&fields, sort_field);
        upsert_note.execute(params![
            id,
            text_at(row, 1, "note")?,
            notetype_id,
            modified,
            context.server_usn,
            text_at(row, 5, "note")?,
            fields.as_ref(),
            sort_text,
            i64::from(checksum),
            row.get(9).and_then(as_i64_lenient).unwrap_or(0),
            row.get(10).and_then(Value::as_str).unwrap_or(""),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_server_copy_wins_only_when_newer_or_equal() {
        // Server changed it this round (usn 5 >= minUsn 5) and it is newer: keep server copy.
        assert!(server_copy_wins(Some((100, 5)), 99, 5));
        assert!(server_copy_wins(Some((100, 5)), 100, 5));
        // Incoming is newer: replace.
        assert!(!server_copy_wins(Some((100, 5)), 101, 5));
        // Server copy not changed since the client's last sync: always replace.
        assert!(!server_copy_wins(Some((200, 4)), 100, 5));
        // No server copy: insert.
        assert!(!server_copy_wins(None, 100, 5));
    }
}
