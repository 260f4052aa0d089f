//! One review sync, as `load_bench.review_sync`: the seven requests the 26.9.3 client sends
//! after 10 reviews on one device, and the checks on each answer.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::client::{Client, Codec, Failure, SYNC_VERSION, session_key};
use crate::job::{CARD_ID, CARD_MOD, CARD_REPS, Counts, Device, Template};

pub const REVIEWED_CARDS: i64 = 10;
const MAX_CHUNK_CALLS: usize = 10_000;
const CLIENT_VERSION_LONG: &str = "anki,26.09.3 (bench),linux";

// The request bodies, serialised straight from the template (no copy into a `Value` first:
// the config and card rows would be copied at every sync).

#[derive(Serialize)]
struct Meta {
    v: u8,
    cv: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Start {
    min_usn: i64,
    lnewer: bool,
    graves: Option<()>,
}

/// `{"_pad":null}`, the body of chunk and finish.
#[derive(Serialize)]
struct Pad {
    _pad: Option<()>,
}

const EMPTY: [(); 0] = [];

#[derive(Serialize)]
struct ApplyChanges<'a> {
    changes: Changes<'a>,
}

#[derive(Serialize)]
struct Changes<'a> {
    models: [(); 0],
    decks: ([DeckUp<'a>; 1], [(); 0]),
    tags: [(); 0],
    conf: &'a Value,
    crt: i64,
}

/// The template's deck with this sync's `mod` and `usn` (`Template::deck` has neither).
#[derive(Serialize)]
struct DeckUp<'a> {
    #[serde(flatten)]
    rest: &'a Map<String, Value>,
    #[serde(rename = "mod")]
    modified: i64,
    usn: i64,
}

#[derive(Serialize)]
struct ApplyChunk<'a> {
    chunk: Chunk<'a>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    done: bool,
    revlog: &'a [[i64; 9]],
    cards: &'a [ReviewedCard<'a>],
}

#[derive(Serialize)]
struct SanityCheck {
    client: SanityCounts,
}

/// [due counts, cards, notes, revlog, graves, notetypes, decks, deck configs].
type SanityCounts = ([i64; 3], i64, i64, i64, i64, i64, i64, i64);

/// A template card row after one more "good" answer: mod..left replaced, the rest as is.
pub struct ReviewedCard<'a> {
    row: &'a [Value],
    review: [i64; 10],
}

impl Serialize for ReviewedCard<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.row.len()))?;
        for value in &self.row[..CARD_MOD] {
            seq.serialize_element(value)?;
        }
        for value in &self.review {
            seq.serialize_element(value)?;
        }
        for value in &self.row[CARD_MOD + self.review.len()..] {
            seq.serialize_element(value)?;
        }
        seq.end()
    }
}

/// The requests of one sync: one session key, the device's host key, the worker's codec.
struct Session<'a> {
    client: &'a Client,
    codec: &'a mut Codec,
    hkey: &'a str,
    session_key: String,
}

impl Session<'_> {
    async fn call(&mut self, method: &str, payload: &impl Serialize) -> Result<Value, Failure> {
        self.client
            .json(self.codec, method, payload, self.hkey, &self.session_key)
            .await
    }
}

/// Runs one review sync for `dev` and updates what the device expects next. The card and
/// revlog counters move on as soon as the reviews are made, as in the Python driver, even
/// when a later step fails.
pub async fn review_sync(
    client: &Client,
    codec: &mut Codec,
    dev: &mut Device,
    template: &Template,
) -> Result<(), Failure> {
    let hkey = dev.hkey.clone();
    let mut session = Session {
        client,
        codec,
        hkey: &hkey,
        session_key: session_key(),
    };

    let meta = session
        .call(
            "sync/meta",
            &Meta {
                v: SYNC_VERSION,
                cv: CLIENT_VERSION_LONG,
            },
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

    let start = Start {
        min_usn: usn,
        lnewer: true,
        graves: None,
    };
    let graves = session.call("sync/start", &start).await?;
    if !["cards", "notes", "decks"]
        .iter()
        .all(|k| graves[*k].is_array())
    {
        return Err(Failure::wrong(format!("start: {graves}")));
    }

    // Reviewing changes the deck's "today" counters, so the deck goes up with the local config.
    let deck = DeckUp {
        rest: &template.deck,
        modified: now,
        usn,
    };
    let changes = Changes {
        models: EMPTY,
        decks: ([deck], EMPTY),
        tags: EMPTY,
        conf: &template.conf,
        crt: template.crt,
    };
    let theirs = session
        .call("sync/applyChanges", &ApplyChanges { changes })
        .await?;
    if !(theirs["models"].is_array() && theirs["decks"].is_array()) {
        return Err(Failure::wrong(format!("applyChanges: {theirs}")));
    }

    let mut done = false;
    for _ in 0..MAX_CHUNK_CALLS {
        let chunk = session.call("sync/chunk", &Pad { _pad: None }).await?;
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
    let chunk = Chunk {
        done: true,
        revlog: &revlog,
        cards: &cards,
    };
    let answer = session
        .call("sync/applyChunk", &ApplyChunk { chunk })
        .await?;
    if !answer.is_null() {
        return Err(Failure::wrong(format!("applyChunk: {answer}")));
    }

    let client = sanity_counts(&template.counts, dev.revlog);
    let sanity = session
        .call("sync/sanityCheck2", &SanityCheck { client })
        .await?;
    if sanity["status"] != "ok" {
        return Err(Failure::wrong(format!("sanityCheck2: {sanity}")));
    }

    let finished = session.call("sync/finish", &Pad { _pad: None }).await?;
    if finished.as_u64().is_none_or(|f| f == 0) {
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
pub fn reviews<'a>(
    dev: &mut Device,
    template: &'a Template,
    now: i64,
    usn: i64,
) -> (Vec<ReviewedCard<'a>>, Vec<[i64; 9]>) {
    let pool = &template.cards;
    let mut cards = Vec::with_capacity(REVIEWED_CARDS as usize);
    let mut revlog = Vec::with_capacity(REVIEWED_CARDS as usize);
    for index in 0..REVIEWED_CARDS {
        let position = (dev.next_card + index as u64) % pool.len() as u64;
        let row = &pool[position as usize];
        // id,nid,did,ord,mod,usn,type,queue,due,ivl,factor,reps,lapses,left,odue,odid,flags,data
        // (`Job::parse` checked that every row has 18 columns and integer ids and reps).
        let reps = row[CARD_REPS].as_i64().unwrap_or(0) + dev.syncs + 1;
        let review = [now, usn, 2, 2, 10 + dev.syncs, 3, 2500, reps, 0, 0];
        let card_id = row[CARD_ID].as_i64().unwrap_or(0);
        revlog.push([
            dev.next_revlog_id + index,
            card_id,
            usn,
            3,
            3,
            1,
            2500,
            6000,
            1,
        ]);
        cards.push(ReviewedCard { row, review });
    }
    dev.next_card += REVIEWED_CARDS as u64;
    dev.next_revlog_id += REVIEWED_CARDS;
    (cards, revlog)
}

/// The client's counts for sanityCheck2, with this sync's reviews in the revlog count.
pub fn sanity_counts(counts: &Counts, revlog_before: i64) -> SanityCounts {
    (
        [0, 0, 0],
        counts.cards,
        counts.notes,
        revlog_before + REVIEWED_CARDS,
        0,
        counts.notetypes,
        counts.decks,
        counts.deck_config,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
        let sent = serde_json::to_value(sanity_counts(&counts, 20)).unwrap();
        assert_eq!(sent, json!([[0, 0, 0], 60, 60, 30, 0, 5, 2, 1]));
    }

    #[test]
    fn reviews_cycle_through_the_pool_and_move_the_counters_on() {
        let template = template();
        let mut dev = device();
        let (cards, revlog) = reviews(&mut dev, &template, 1_700_000_000, 5);
        assert_eq!(cards.len(), 10);
        assert_eq!(revlog.len(), 10);
        // next_card 2: the pool's third row first, then around from the first.
        let cards = serde_json::to_value(&cards).unwrap();
        #[rustfmt::skip]
        let first = json!([103, 7, 1, 0, 1_700_000_000, 5, 2, 2, 13, 3, 2500, 5, 0, 0, 0, 0, 0, ""]);
        assert_eq!(cards[0], first);
        assert_eq!(cards[1][CARD_ID], 101);
        assert_eq!(cards[1][CARD_REPS], 8);
        assert_eq!(revlog[0], [1000, 103, 5, 3, 3, 1, 2500, 6000, 1]);
        assert_eq!(revlog[9][0], 1009);
        assert_eq!((dev.next_card, dev.next_revlog_id), (12, 1010));
    }

    #[test]
    fn the_bodies_are_the_python_drivers() {
        fn body(payload: &impl Serialize) -> Value {
            serde_json::to_value(payload).unwrap()
        }
        assert_eq!(
            body(&Meta {
                v: 11,
                cv: CLIENT_VERSION_LONG
            }),
            json!({"v": 11, "cv": CLIENT_VERSION_LONG})
        );
        let start = Start {
            min_usn: 7,
            lnewer: true,
            graves: None,
        };
        assert_eq!(
            body(&start),
            json!({"minUsn": 7, "lnewer": true, "graves": null})
        );
        assert_eq!(body(&Pad { _pad: None }), json!({"_pad": null}));
        let client = sanity_counts(&template().counts, 0);
        assert_eq!(
            body(&SanityCheck { client }),
            json!({"client": [[0, 0, 0], 60, 60, 10, 0, 5, 2, 1]})
        );
    }

    #[test]
    fn apply_changes_sends_the_deck_with_this_syncs_mod_and_usn_and_the_config() {
        let mut deck = Map::new();
        deck.insert("id".into(), json!(1651));
        deck.insert("name".into(), json!("Bench"));
        let conf = json!({"curDeck": 1651, "sortType": "noteFld"});
        let deck = DeckUp {
            rest: &deck,
            modified: 1_700_000_000,
            usn: 9,
        };
        let changes = Changes {
            models: EMPTY,
            decks: ([deck], EMPTY),
            tags: EMPTY,
            conf: &conf,
            crt: 1_600_000_000,
        };
        assert_eq!(
            serde_json::to_value(ApplyChanges { changes }).unwrap(),
            json!({"changes": {
                "models": [],
                "decks": [[{"id": 1651, "name": "Bench", "mod": 1_700_000_000, "usn": 9}], []],
                "tags": [],
                "conf": {"curDeck": 1651, "sortType": "noteFld"},
                "crt": 1_600_000_000,
            }})
        );
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
