//! `applyChanges`: notetypes, decks, deck configs, tags, config and `crt`
//! (docs/sync-protocol.md#changes).
//!
//! The server's answer is computed before the client's changes are merged, and the merge
//! keeps the copy with the newer `mod`. Everything stored gets the server's usn.

use rusqlite::Connection;
use serde_json::Value;

use super::objects::{check_deck, check_deck_config, check_notetype};
use super::wire::UnchunkedChanges;
use super::{OpResult, SyncOpError};
use crate::collection::census::ModelsMemo;
use crate::collection::col_row::col;
use crate::collection::json::{
    ColObjects, JsonObject, Touched, object_id, object_mtime, object_usn,
};

pub struct ChangesContext {
    pub server_usn: i32,
    pub client_usn: i32,
    pub client_is_newer: bool,
}

/// Objects changed on the server since the client's last sync.
fn pending(objects: &JsonObject, client_usn: i32) -> Vec<JsonObject> {
    objects
        .values()
        .filter_map(Value::as_object)
        .filter(|object| object_usn(object) >= i64::from(client_usn))
        .cloned()
        .collect()
}

pub fn apply_changes(
    conn: &Connection,
    memo: &mut ModelsMemo,
    context: &ChangesContext,
    incoming: UnchunkedChanges,
) -> OpResult<UnchunkedChanges> {
    // Refuse before anything is merged: these objects go to the user's other devices.
    for model in &incoming.models {
        check_notetype(model)?;
    }
    for deck in &incoming.decks.0 {
        check_deck(deck)?;
    }
    for config in &incoming.decks.1 {
        check_deck_config(config)?;
    }
    let client_usn = context.client_usn;
    let columns = col(conn).object_columns()?;
    // The notetypes are most of the row: a review sync sends none, and the server rarely has
    // one to send, so they are only parsed when one side has a notetype change.
    let with_models =
        !incoming.models.is_empty() || memo.any_since(&columns.models, i64::from(client_usn))?;
    let mut objects = ColObjects::parse(&columns, with_models)?;

    let mut answer = UnchunkedChanges {
        models: pending(&objects.models, client_usn),
        decks: (
            pending(&objects.decks, client_usn),
            pending(&objects.dconf, client_usn),
        ),
        tags: objects
            .tags
            .iter()
            .filter(|(_, usn)| usn.as_i64().unwrap_or(0) >= i64::from(client_usn))
            .map(|(name, _)| name.clone())
            .collect(),
        conf: None,
        crt: None,
    };
    if !context.client_is_newer {
        // Exactly one side's config wins: the side whose collection was modified last.
        answer.conf = Some(objects.conf.clone());
        answer.crt = Some(col(conn).creation_time()?);
    }

    let usn = context.server_usn;
    // Only what the client sent is written back: a review sync sends one deck and the
    // config, and the notetypes (most of the row) stay as stored.
    let mut touched = Touched {
        models: !incoming.models.is_empty(),
        decks: !incoming.decks.0.is_empty(),
        dconf: !incoming.decks.1.is_empty(),
        conf: incoming.conf.is_some(),
        tags: false,
    };
    for model in incoming.models {
        merge_notetype(&mut objects, model, usn)?;
    }
    for deck in incoming.decks.0 {
        merge_named(&mut objects.decks, deck, usn, true)?;
    }
    for config in incoming.decks.1 {
        merge_named(&mut objects.dconf, config, usn, false)?;
    }
    for tag in &incoming.tags {
        touched.tags |= objects.register_tag(tag, usn);
    }
    if let Some(conf) = incoming.conf {
        // The sender's config is complete; anything it lacks was removed there.
        objects.conf = conf;
    }
    objects.save_touched(conn, touched)?;
    if let Some(crt) = incoming.crt {
        col(conn).set_creation_time(crt)?;
    }
    Ok(answer)
}

fn id_key(object: &JsonObject, what: &str) -> OpResult<String> {
    object_id(object)
        .map(|id| id.to_string())
        .ok_or_else(|| SyncOpError::invalid(format!("{what} without a valid id")))
}

fn array_len(object: &JsonObject, key: &str) -> usize {
    object
        .get(key)
        .and_then(Value::as_array)
        .map_or(0, Vec::len)
}

fn merge_notetype(objects: &mut ColObjects, mut incoming: JsonObject, usn: i32) -> OpResult<()> {
    let key = id_key(&incoming, "notetype")?;
    if let Some(existing) = objects.models.get(&key).and_then(Value::as_object) {
        if object_mtime(existing) > object_mtime(&incoming) {
            return Ok(());
        }
        if array_len(existing, "flds") != array_len(&incoming, "flds")
            || array_len(existing, "tmpls") != array_len(&incoming, "tmpls")
        {
            return Err(SyncOpError::invalid(
                "notetype schema changed; a full sync is required",
            ));
        }
    }
    store_with_unique_name(&mut objects.models, key, &mut incoming, usn);
    Ok(())
}

/// Decks and deck configs: the incoming copy wins when it is at least as new.
fn merge_named(
    objects: &mut JsonObject,
    mut incoming: JsonObject,
    usn: i32,
    unique_names: bool,
) -> OpResult<()> {
    let key = id_key(&incoming, "deck or deck config")?;
    if let Some(existing) = objects.get(&key).and_then(Value::as_object)
        && object_mtime(existing) > object_mtime(&incoming)
    {
        return Ok(());
    }
    if unique_names {
        store_with_unique_name(objects, key, &mut incoming, usn);
    } else {
        incoming.insert("usn".into(), Value::from(usn));
        objects.insert(key, Value::Object(incoming));
    }
    Ok(())
}

fn store_with_unique_name(
    objects: &mut JsonObject,
    key: String,
    incoming: &mut JsonObject,
    usn: i32,
) {
    if let Some(name) = incoming.get("name").and_then(Value::as_str) {
        let unique = ColObjects::unique_name(objects, &key, name);
        incoming.insert("name".into(), Value::from(unique));
    }
    incoming.insert("usn".into(), Value::from(usn));
    objects.insert(key, Value::Object(std::mem::take(incoming)));
}
