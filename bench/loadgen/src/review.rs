//! One review sync, as `load_bench.review_sync`: the seven requests the 26.9.3 client sends
//! after 10 reviews on one device, and the checks on each answer.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::client::{Client, Codec, Failure, session_key};
use crate::job::{CARD_ID, CARD_MOD, CARD_REPS, Counts, Device, Template};

pub const REVIEWED_CARDS: i64 = 10;
const MAX_CHUNK_CALLS: usize = 10_000;
const CLIENT_VERSION_LONG: &str = "anki,26.09.3 (bench),linux";

/// Runs one review sync for `dev` and updates what the device expects next. The card and
/// revlog counters move on as soon as the reviews are made, as in the Python driver, even
/// when a later step fails.
pub async fn review_sync(
    client: &Client,
    codec: &mut Codec,
    dev: &mut Device,
    template: &Template,
) -> Result<(), Failure> {
    let sk = session_key();
    let hkey = dev.hkey.clone();
    let mut call = async |method: &str, payload: Value| -> Result<Value, Failure> {
        client.json(codec, method, &payload, &hkey, &sk).await
    };

    let meta = call(
        "sync/meta",
        json!({"v": crate::client::SYNC_VERSION, "cv": CLIENT_VERSION_LONG}),
    )
    .await?;
    if !truthy(&meta["cont"]) || truthy(&meta["msg"]) {
        return Err(Failure::wrong(format!("meta: {meta}")));
    }
    let Some(usn) = meta["usn"].as_i64() else {
        return Err(Failure::wrong(format!("meta: no usn in {meta}")));
    };
    if dev.usn >= 0 && usn != dev.usn {
        return Err(Failure::wrong(format!(
            "meta: usn {usn}, expected {}",
            dev.usn
        )));
    }
    let now = unix_now();

    let graves = call(
        "sync/start",
        json!({"minUsn": usn, "lnewer": true, "graves": null}),
    )
    .await?;
    if !["cards", "notes", "decks"]
        .iter()
        .all(|k| graves[*k].is_array())
    {
        return Err(Failure::wrong(format!("start: {graves}")));
    }

    // Reviewing changes the deck's "today" counters, so the deck goes up with the local config.
    let mut deck = template.deck.clone();
    deck.insert("mod".into(), now.into());
    deck.insert("usn".into(), usn.into());
    let changes = json!({
        "models": [],
        "decks": [[deck], []],
        "tags": [],
        "conf": template.conf,
        "crt": template.crt,
    });
    let theirs = call("sync/applyChanges", json!({"changes": changes})).await?;
    if !(theirs["models"].is_array() && theirs["decks"].is_array()) {
        return Err(Failure::wrong(format!("applyChanges: {theirs}")));
    }

    let mut done = false;
    for _ in 0..MAX_CHUNK_CALLS {
        let chunk = call("sync/chunk", json!({"_pad": null})).await?;
        if truthy(&chunk["done"]) {
            done = true;
            break;
        }
    }
    if !done {
        return Err(Failure::wrong(format!(
            "chunk: no done after {MAX_CHUNK_CALLS} calls"
        )));
    }

    let (cards, revlog) = reviews(dev, template, now, usn);
    let answer = call(
        "sync/applyChunk",
        json!({"chunk": {"done": true, "revlog": revlog, "cards": cards}}),
    )
    .await?;
    if !answer.is_null() {
        return Err(Failure::wrong(format!("applyChunk: {answer}")));
    }

    let client_counts = sanity_counts(&template.counts, dev.revlog);
    let sanity = call("sync/sanityCheck2", json!({"client": client_counts})).await?;
    if sanity["status"] != "ok" {
        return Err(Failure::wrong(format!("sanityCheck2: {sanity}")));
    }

    let finished = call("sync/finish", json!({"_pad": null})).await?;
    if !finished.as_i64().is_some_and(|f| f > 0) && !finished.as_u64().is_some_and(|f| f > 0) {
        return Err(Failure::wrong(format!("finish: {finished}")));
    }
    dev.revlog += REVIEWED_CARDS;
    dev.usn = usn + 1;
    dev.syncs += 1;
    Ok(())
}

/// Python's truth value of a JSON answer's field (missing is null, so false).
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The 10 reviewed cards (the next rows of the template's pool, answered "good" once more)
/// and their revlog entries; moves the device's card and revlog-id counters on.
pub fn reviews(
    dev: &mut Device,
    template: &Template,
    now: i64,
    usn: i64,
) -> (Vec<Value>, Vec<Value>) {
    let pool = &template.cards;
    let mut cards = Vec::with_capacity(REVIEWED_CARDS as usize);
    let mut revlog = Vec::with_capacity(REVIEWED_CARDS as usize);
    for index in 0..REVIEWED_CARDS {
        let position = (dev.next_card + index as u64) % pool.len() as u64;
        let mut row = pool[position as usize].clone();
        // id,nid,did,ord,mod,usn,type,queue,due,ivl,factor,reps,lapses,left,odue,odid,flags,data
        let reps = row[CARD_REPS].as_i64().unwrap_or(0) + dev.syncs + 1;
        let review: [Value; 10] = [
            now.into(),
            usn.into(),
            2.into(),
            2.into(),
            (10 + dev.syncs).into(),
            3.into(),
            2500.into(),
            reps.into(),
            0.into(),
            0.into(),
        ];
        for (slot, value) in row[CARD_MOD..CARD_MOD + review.len()]
            .iter_mut()
            .zip(review)
        {
            *slot = value;
        }
        revlog.push(json!([
            dev.next_revlog_id + index,
            row[CARD_ID],
            usn,
            3,
            3,
            1,
            2500,
            6000,
            1
        ]));
        cards.push(Value::Array(row));
    }
    dev.next_card += REVIEWED_CARDS as u64;
    dev.next_revlog_id += REVIEWED_CARDS;
    (cards, revlog)
}

/// The client's counts for sanityCheck2: [due counts, cards, notes, revlog (with this sync's
/// reviews), graves, notetypes, decks, deck configs].
pub fn sanity_counts(counts: &Counts, revlog_before: i64) -> Value {
    json!([
        [0, 0, 0],
        counts.cards,
        counts.notes,
        revlog_before + REVIEWED_CARDS,
        0,
        counts.notetypes,
        counts.decks,
        counts.deck_config,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Map;

    fn template() -> Template {
        let row = |id: i64, reps: i64| {
            json!([id, 7, 1, 0, 100, -1, 0, 0, 1, 0, 0, reps, 0, 0, 0, 0, 0, ""])
                .as_array()
                .unwrap()
                .clone()
        };
        Template {
            deck: Map::new(),
            conf: json!({}),
            crt: 0,
            counts: Counts {
                cards: 60,
                notes: 60,
                notetypes: 5,
                decks: 2,
                deck_config: 1,
            },
            cards: vec![row(101, 4), row(102, 0), row(103, 1)],
        }
    }

    fn device() -> Device {
        Device {
            user: "bench0".into(),
            hkey: "k".into(),
            usn: 5,
            revlog: 20,
            next_revlog_id: 1000,
            next_card: 2,
            syncs: 3,
            template: 0,
        }
    }

    #[test]
    fn the_sanity_counts_include_this_syncs_reviews() {
        let counts = template().counts;
        assert_eq!(
            sanity_counts(&counts, 20),
            json!([[0, 0, 0], 60, 60, 30, 0, 5, 2, 1])
        );
    }

    #[test]
    fn reviews_cycle_through_the_pool_and_move_the_counters_on() {
        let template = template();
        let mut dev = device();
        let (cards, revlog) = reviews(&mut dev, &template, 1_700_000_000, 5);
        assert_eq!(cards.len(), 10);
        assert_eq!(revlog.len(), 10);
        // next_card 2: the pool's third row first, then around from the first.
        assert_eq!(
            cards[0],
            json!([
                103,
                7,
                1,
                0,
                1_700_000_000,
                5,
                2,
                2,
                13,
                3,
                2500,
                5,
                0,
                0,
                0,
                0,
                0,
                ""
            ])
        );
        assert_eq!(cards[1][CARD_ID], 101);
        assert_eq!(cards[1][CARD_REPS], 8);
        assert_eq!(revlog[0], json!([1000, 103, 5, 3, 3, 1, 2500, 6000, 1]));
        assert_eq!(revlog[9][0], 1009);
        assert_eq!((dev.next_card, dev.next_revlog_id), (12, 1010));
        // The template itself is untouched.
        assert_eq!(template.cards[2][CARD_MOD], 100);
    }

    #[test]
    fn truthiness_follows_python() {
        assert!(!truthy(&Value::Null));
        assert!(!truthy(&json!("")));
        assert!(truthy(&json!("server is busy")));
        assert!(!truthy(&json!(0)));
        assert!(truthy(&json!(true)));
    }
}
