//! The v11 collection calls (`/sync/`) as a scripted client makes them: meta, a normal sync
//! from `start` to `finish`, and the full upload.

use rusqlite::Connection;
use serde_json::{Value, json};

use super::{Response, TestApp};

/// The body of the argument-less calls (`chunk`, `finish`, `abort`, `download`).
pub fn pad() -> Value {
    json!({"_pad": null})
}

/// The `changes` of `applyChanges` from a client that has nothing to send.
pub fn no_changes() -> Value {
    json!({"models": [], "decks": [[], []], "tags": []})
}

/// The id of the stock Basic notetype among the `models` of an `applyChanges` answer.
pub fn basic_notetype_id(changes: &Value) -> i64 {
    basic_notetype(changes)["id"].as_i64().unwrap()
}

/// The stock Basic notetype among the `models` of an `applyChanges` answer.
pub fn basic_notetype(changes: &Value) -> Value {
    changes["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|model| model["name"] == "Basic")
        .cloned()
        .expect("the stock Basic notetype")
}

/// What the server sends in a normal sync started with `min_usn`.
pub struct Received {
    pub changes: Value,
    pub notes: Vec<Value>,
    pub cards: Vec<Value>,
    pub revlog: Vec<Value>,
}

impl Received {
    pub fn note(&self, guid: &str) -> &Value {
        self.notes
            .iter()
            .find(|note| note[1] == guid)
            .unwrap_or_else(|| panic!("note {guid} not sent"))
    }

    pub fn deck(&self, name: &str) -> &Value {
        self.changes["decks"][0]
            .as_array()
            .unwrap()
            .iter()
            .find(|deck| deck["name"] == name)
            .unwrap_or_else(|| panic!("deck {name} not sent"))
    }

    /// The counts of a client that held nothing before and now holds what it received.
    pub fn counts(&self) -> [i64; 6] {
        let len = |value: &Value| value.as_array().unwrap().len() as i64;
        [
            self.cards.len() as i64,
            self.notes.len() as i64,
            self.revlog.len() as i64,
            len(&self.changes["models"]),
            len(&self.changes["decks"][0]),
            len(&self.changes["decks"][1]),
        ]
    }
}

impl TestApp {
    /// `meta` in session `s`, as most tests send it; the answer is returned whatever it is.
    pub async fn meta(&self, key: &str) -> Response {
        self.meta_in(key, "s").await
    }

    /// `meta` in a given session.
    pub async fn meta_in(&self, key: &str, session: &str) -> Response {
        self.call("meta", key, session, json!({"v": 11, "cv": "x"}))
            .await
    }

    /// `meta` with a full client version; must answer 200.
    pub async fn meta_ok(&self, key: &str) -> Value {
        let response = self
            .call(
                "meta",
                key,
                "meta",
                json!({"v": 11, "cv": "anki,test,linux"}),
            )
            .await;
        assert_eq!(response.status, 200, "{}", response.text());
        response.json()
    }

    /// `start` without graves; must answer 200.
    pub async fn start_sync(&self, key: &str, session: &str, min_usn: i64, lnewer: bool) -> Value {
        let start = self
            .call(
                "start",
                key,
                session,
                json!({"minUsn": min_usn, "lnewer": lnewer, "graves": null}),
            )
            .await;
        assert_eq!(start.status, 200, "{}", start.text());
        start.json()
    }

    /// `applyChanges` with the client's `changes`; the answer is returned whatever it is.
    pub async fn apply_changes(&self, key: &str, session: &str, changes: Value) -> Response {
        self.call("applyChanges", key, session, json!({"changes": changes}))
            .await
    }

    /// `applyChanges` from a client with nothing to send; must answer 200.
    pub async fn apply_no_changes(&self, key: &str, session: &str) -> Value {
        let changes = self.apply_changes(key, session, no_changes()).await;
        assert_eq!(changes.status, 200, "{}", changes.text());
        changes.json()
    }

    pub async fn chunk(&self, key: &str, session: &str) -> Response {
        self.call("chunk", key, session, pad()).await
    }

    pub async fn apply_chunk(&self, key: &str, session: &str, chunk: Value) -> Response {
        self.call("applyChunk", key, session, json!({"chunk": chunk}))
            .await
    }

    pub async fn finish(&self, key: &str, session: &str) -> Response {
        self.call("finish", key, session, pad()).await
    }

    pub async fn abort(&self, key: &str, session: &str) -> Response {
        self.call("abort", key, session, pad()).await
    }

    /// A device of `username` logs in and opens a normal sync (session "s") that it leaves
    /// open, as a device in the middle of a sync does; its host key.
    pub async fn open_sync(&self, username: &str) -> String {
        let key = self.login_key(username).await;
        self.meta_ok(&key).await;
        self.receive(&key, "s", 0).await;
        key
    }

    /// A normal sync started with `min_usn` by a client that sends nothing: everything the
    /// server sends up to the last chunk. The sync is left open.
    pub async fn receive(&self, key: &str, session: &str, min_usn: i64) -> Received {
        self.start_sync(key, session, min_usn, false).await;
        let mut received = Received {
            changes: self.apply_no_changes(key, session).await,
            notes: Vec::new(),
            cards: Vec::new(),
            revlog: Vec::new(),
        };
        loop {
            let chunk = self.chunk(key, session).await;
            assert_eq!(chunk.status, 200, "{}", chunk.text());
            let chunk = chunk.json();
            for (name, rows) in [
                ("notes", &mut received.notes),
                ("cards", &mut received.cards),
                ("revlog", &mut received.revlog),
            ] {
                if let Some(list) = chunk.get(name).and_then(Value::as_array) {
                    rows.extend(list.iter().cloned());
                }
            }
            if chunk["done"] == true {
                return received;
            }
        }
    }

    /// Ends a started sync the way a client with nothing to send does, reporting `counts`
    /// (cards, notes, revlog, models, decks, deck configs) in `sanityCheck2`; returns the
    /// new `mod`.
    pub async fn finish_sync(&self, key: &str, session: &str, counts: [i64; 6]) -> i64 {
        let applied = self.apply_chunk(key, session, json!({"done": true})).await;
        assert_eq!(applied.status, 200, "{}", applied.text());
        let [cards, notes, revlog, models, decks, dconf] = counts;
        let sanity = self
            .call(
                "sanityCheck2",
                key,
                session,
                json!({"client": [[0, 0, 0], cards, notes, revlog, 0, models, decks, dconf]}),
            )
            .await
            .json();
        assert_eq!(sanity["status"], "ok", "{sanity}");
        let finished = self.finish(key, session).await;
        assert_eq!(finished.status, 200, "{}", finished.text());
        finished.json().as_i64().unwrap()
    }

    /// A full upload of the collection file `collection`; the answer is returned as it is.
    pub async fn full_upload(&self, key: &str, collection: &[u8]) -> Response {
        let body = zstd::encode_all(collection, 0).unwrap();
        self.raw("upload", Some(Self::header(key, "full")), body)
            .await
    }

    /// A full upload of a brand-new schema-11 collection whose `mod` is `modified`.
    pub async fn full_upload_fresh_collection(&self, key: &str, modified: i64) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        anki_sidecar::collection::schema11::create_new_collection(&path, modified, 1_795_000_000)
            .unwrap();
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute("UPDATE col SET mod = ?1", [modified]).unwrap();
        }
        let answer = self.full_upload(key, &std::fs::read(&path).unwrap()).await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.text(), "OK");
    }

    /// A full download; the answer is returned as it is.
    pub async fn full_download(&self, key: &str) -> Response {
        self.call("download", key, "full", pad()).await
    }
}
