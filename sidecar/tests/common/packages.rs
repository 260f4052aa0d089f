//! `.apkg` packages built inside the tests, in the shapes real tools write
//! (docs/sync-protocol.md#package-versions): LEGACY_1 as genanki makes it, and LATEST as Anki ≥
//! 2.1.50 exports it.

use std::io::Write;
use std::path::{Path, PathBuf};

use anki_sidecar::collection::schema11::create_new_collection;
use prost::Message;
use rusqlite::{Connection, params};
use serde_json::{Map, Value, json};
use sha1::{Digest, Sha1};
use zip::write::SimpleFileOptions;

/// genanki's ids come from a counter started at the generation time; these are the ones of
/// the observed import in docs/sync-protocol.md#merge-rules.
pub const GEN_NOTETYPE_ID: i64 = 1_700_000_000_001;
pub const GEN_DECK_ID: i64 = 2_000_000_000_001;
pub const GEN_DECK_NAME: &str = "GenDeck::Sub";
pub const GEN_TIME_MS: i64 = 1_700_000_000_000;
/// genanki gives the `col` row fixed old timestamps.
const GEN_CRT_SECS: i64 = 1_332_961_200;

/// The schema-18 collection Anki itself wrote (see fixtures/make_schema18_fixture.py).
pub fn schema18_fixture_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/schema18.anki2")
}

pub const FIXTURE_BASIC_ID: i64 = 1_795_345_668_289;
pub const FIXTURE_PARENT_DECK_ID: i64 = 1_795_345_668_355;

pub fn sha1_of(data: &[u8]) -> [u8; 20] {
    Sha1::digest(data).into()
}

pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(sha1_of(data))
}

#[derive(Clone, Debug)]
pub struct GenNote {
    pub id: i64,
    pub guid: String,
    pub fields: Vec<String>,
    pub tags: Vec<String>,
    /// Seconds, as genanki writes `mod`.
    pub mtime: i64,
}

impl GenNote {
    pub fn new(id: i64, guid: &str, fields: &[&str]) -> Self {
        Self {
            id,
            guid: guid.into(),
            fields: fields.iter().map(|field| field.to_string()).collect(),
            tags: vec!["generated".into()],
            mtime: GEN_TIME_MS / 1000,
        }
    }

    /// genanki numbers cards after their notes; one template, so one card per note.
    pub fn card_id(&self) -> i64 {
        self.id + 100
    }
}

/// A genanki-shaped LEGACY_1 package: one notetype, one deck, notes, and media.
#[derive(Clone, Debug)]
pub struct GenPackage {
    pub notetype_id: i64,
    pub notetype_name: String,
    pub notetype_mtime: i64,
    pub field_names: Vec<String>,
    pub css: String,
    pub deck_id: i64,
    pub deck_name: String,
    pub notes: Vec<GenNote>,
    /// `(name in the JSON map, bytes)`; member `i` holds entry `i`.
    pub media: Vec<(String, Vec<u8>)>,
}

pub const PIC_BYTES: &[u8] = b"\x89PNG\r\n\x1a\nthe package's picture";

impl GenPackage {
    /// Two notes, the first showing `pic.png`, as in the observed import of
    /// docs/sync-protocol.md#merge-rules.
    pub fn standard() -> Self {
        Self {
            notetype_id: GEN_NOTETYPE_ID,
            notetype_name: "GenModel".into(),
            notetype_mtime: GEN_TIME_MS / 1000,
            field_names: vec!["Front".into(), "Back".into()],
            css: ".card { font-family: arial; }".into(),
            deck_id: GEN_DECK_ID,
            deck_name: GEN_DECK_NAME.into(),
            notes: vec![
                GenNote::new(
                    1_700_000_000_100,
                    "gen-guid-1",
                    &["<img src=\"pic.png\">", "first back"],
                ),
                GenNote::new(
                    1_700_000_000_101,
                    "gen-guid-2",
                    &["second front", "second back"],
                ),
            ],
            media: vec![("pic.png".into(), PIC_BYTES.to_vec())],
        }
    }

    fn notetype_json(&self) -> Value {
        let fields: Vec<Value> = self
            .field_names
            .iter()
            .enumerate()
            .map(|(ord, name)| {
                json!({"name": name, "ord": ord, "font": "Arial", "media": [], "rtl": false,
                       "size": 20, "sticky": false})
            })
            .collect();
        let first = &self.field_names[0];
        let back = self.field_names.get(1).unwrap_or(first);
        // genanki serialises the id as a string, which Anki accepts
        // (docs/sync-protocol.md#notetypes).
        json!({
            "id": self.notetype_id.to_string(), "name": self.notetype_name, "type": 0,
            "mod": self.notetype_mtime, "usn": -1, "sortf": 0, "did": self.deck_id,
            "flds": fields,
            "tmpls": [{"name": "Card 1", "ord": 0, "qfmt": format!("{{{{{first}}}}}"),
                       "afmt": format!("{{{{FrontSide}}}}<hr id=answer>{{{{{back}}}}}"),
                       "bqfmt": "", "bafmt": "", "did": null}],
            "css": self.css, "latexPre": anki_sidecar::collection::schema11::LATEX_PRE,
            "latexPost": anki_sidecar::collection::schema11::LATEX_POST,
            "req": [[0, "any", [0]]], "tags": [], "vers": [],
        })
    }

    fn deck_json(&self) -> Value {
        json!({
            "id": self.deck_id, "name": self.deck_name, "mod": GEN_TIME_MS / 1000, "usn": -1,
            "collapsed": false, "conf": 1, "desc": "", "dyn": 0, "extendNew": 0,
            "extendRev": 50, "lrnToday": [0, 0], "newToday": [0, 0], "revToday": [0, 0],
            "timeToday": [0, 0],
        })
    }

    /// The `collection.anki2` member, with `tweak` applied to it last.
    pub fn collection_with(&self, tweak: impl FnOnce(&Connection)) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("collection.anki2");
        create_new_collection(&path, GEN_TIME_MS, GEN_CRT_SECS).unwrap();
        let conn = Connection::open(&path).unwrap();
        let mut models: Map<String, Value> =
            serde_json::from_str(&col_text(&conn, "models")).unwrap();
        models.insert(self.notetype_id.to_string(), self.notetype_json());
        let mut decks: Map<String, Value> =
            serde_json::from_str(&col_text(&conn, "decks")).unwrap();
        decks.insert(self.deck_id.to_string(), self.deck_json());
        let mut conf: Map<String, Value> = serde_json::from_str(&col_text(&conn, "conf")).unwrap();
        // genanki's `conf` predates the v2 scheduler keys.
        conf.remove("schedVer");
        conf.remove("sched2021");
        conn.execute(
            "UPDATE col SET mod = ?1, scm = ?1, models = ?2, decks = ?3, conf = ?4",
            params![
                GEN_TIME_MS,
                Value::Object(models).to_string(),
                Value::Object(decks).to_string(),
                Value::Object(conf).to_string()
            ],
        )
        .unwrap();
        for note in &self.notes {
            conn.execute(
                "INSERT INTO notes (id, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data) \
                 VALUES (?1, ?2, ?3, ?4, -1, ?5, ?6, ?7, 0, 0, '')",
                params![
                    note.id,
                    note.guid,
                    self.notetype_id,
                    note.mtime,
                    format!(" {} ", note.tags.join(" ")),
                    note.fields.join("\u{1f}"),
                    note.fields[0],
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, \
                 reps, lapses, left, odue, odid, flags, data) \
                 VALUES (?1, ?2, ?3, 0, ?4, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, '')",
                params![note.card_id(), note.id, self.deck_id, note.mtime],
            )
            .unwrap();
        }
        tweak(&conn);
        conn.close().unwrap();
        std::fs::read(&path).unwrap()
    }

    pub fn collection(&self) -> Vec<u8> {
        self.collection_with(|_| {})
    }

    pub fn media_map(&self) -> Value {
        let map: Map<String, Value> = self
            .media
            .iter()
            .enumerate()
            .map(|(index, (name, _))| (index.to_string(), json!(name)))
            .collect();
        Value::Object(map)
    }

    /// The package as genanki writes it: `collection.anki2`, `media`, then `0`, `1`, ….
    pub fn package(&self) -> Vec<u8> {
        self.package_from(&self.collection(), &self.media_map().to_string())
    }

    /// The package with a replaced collection member or media map.
    pub fn package_from(&self, collection: &[u8], media_map: &str) -> Vec<u8> {
        let mut members: Vec<(String, Vec<u8>)> = vec![
            ("collection.anki2".into(), collection.to_vec()),
            ("media".into(), media_map.as_bytes().to_vec()),
        ];
        for (index, (_, data)) in self.media.iter().enumerate() {
            members.push((index.to_string(), data.clone()));
        }
        zip_members(&members, zip::CompressionMethod::Deflated)
    }
}

fn col_text(conn: &Connection, column: &str) -> String {
    conn.query_row(&format!("SELECT {column} FROM col"), [], |row| row.get(0))
        .unwrap()
}

pub fn zip_members(members: &[(String, Vec<u8>)], method: zip::CompressionMethod) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, data) in members {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MediaEntries {
    #[prost(message, repeated, tag = "1")]
    pub entries: Vec<MediaEntry>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct MediaEntry {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(uint32, tag = "2")]
    pub size: u32,
    #[prost(bytes = "vec", tag = "3")]
    pub sha1: Vec<u8>,
}

/// The note and card added to the fixture so that a LATEST package carries a media reference.
pub const LATE_NOTE_ID: i64 = 1_795_345_668_400;
pub const LATE_CARD_ID: i64 = 1_795_345_668_401;
pub const LATE_NOTE_GUID: &str = "late-guid-1";
pub const LATE_PIC: &[u8] = b"\x89PNG\r\n\x1a\na picture in a latest package";

/// The schema-18 fixture plus one Basic note in deck "Parent" showing `late.png`.
pub fn schema18_collection_with_media_note() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("collection.anki21");
    std::fs::copy(schema18_fixture_path(), &path).unwrap();
    let conn = Connection::open(&path).unwrap();
    let fields = "<img src=\"late.png\">\u{1f}late back";
    let (sfld, csum) = anki_sidecar::note_text::derived_columns(fields, 0);
    conn.execute(
        "INSERT INTO notes (id, guid, mid, mod, usn, tags, flds, sfld, csum, flags, data) \
         VALUES (?1, ?2, ?3, 1795345668, -1, ' late ', ?4, ?5, ?6, 0, '')",
        params![
            LATE_NOTE_ID,
            LATE_NOTE_GUID,
            FIXTURE_BASIC_ID,
            fields,
            sfld,
            csum
        ],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO cards (id, nid, did, ord, mod, usn, type, queue, due, ivl, factor, reps, \
         lapses, left, odue, odid, flags, data) \
         VALUES (?1, ?2, ?3, 0, 1795345668, -1, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 0, '{}')",
        params![LATE_CARD_ID, LATE_NOTE_ID, FIXTURE_PARENT_DECK_ID],
    )
    .unwrap();
    conn.close().unwrap();
    std::fs::read(&path).unwrap()
}

pub const DUMMY_NOTE_GUID: &str = "dummy-please-update";

/// The tiny schema-11 collection modern exports add for old clients; importers must ignore
/// it when `meta` exists.
pub fn dummy_legacy_collection() -> Vec<u8> {
    let mut dummy = GenPackage::standard();
    dummy.notetype_name = "Dummy".into();
    dummy.deck_name = "Dummy".into();
    dummy.notes = vec![GenNote::new(
        1_700_000_000_900,
        DUMMY_NOTE_GUID,
        &["Please update to the latest Anki version", ""],
    )];
    dummy.collection()
}

/// A LATEST package (docs/sync-protocol.md#package-versions): every member stored, collection,
/// media map and media files zstd-compressed.
pub fn latest_package(collection18: &[u8], media: &[(&str, &[u8])]) -> Vec<u8> {
    let entries = MediaEntries {
        entries: media
            .iter()
            .map(|(name, data)| MediaEntry {
                name: name.to_string(),
                size: data.len() as u32,
                sha1: sha1_of(data).to_vec(),
            })
            .collect(),
    };
    let compressed_media: Vec<Vec<u8>> = media
        .iter()
        .map(|(_, data)| zstd::encode_all(*data, 0).unwrap())
        .collect();
    latest_package_raw(
        &zstd::encode_all(collection18, 0).unwrap(),
        &zstd::encode_all(&entries.encode_to_vec()[..], 0).unwrap(),
        &compressed_media,
    )
}

/// A LATEST package from members exactly as given (already compressed or deliberately not).
pub fn latest_package_raw(
    collection_member: &[u8],
    media_member: &[u8],
    media_files: &[Vec<u8>],
) -> Vec<u8> {
    let mut members: Vec<(String, Vec<u8>)> = vec![
        ("meta".into(), vec![0x08, 0x03]),
        ("collection.anki21b".into(), collection_member.to_vec()),
        ("collection.anki2".into(), dummy_legacy_collection()),
    ];
    for (index, data) in media_files.iter().enumerate() {
        members.push((index.to_string(), data.clone()));
    }
    members.push(("media".into(), media_member.to_vec()));
    zip_members(&members, zip::CompressionMethod::Stored)
}
