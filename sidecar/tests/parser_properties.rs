//! Property tests of the parsers that read what clients send: the `anki-sync` header, zstd
//! request bodies and their JSON, chunk rows, media upload zips and `.apkg` packages.
//!
//! Each property feeds arbitrary or mutated input and checks that the parser does not panic,
//! refuses bad input with an error, and stays within its cap. Allocations are measured with a
//! counting allocator (per thread, so parallel tests don't mix); it sees the Rust heap, not
//! the C libraries' own buffers (zstd's window, SQLite's page cache).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;

use anki_sidecar::error::ApiError;
use anki_sidecar::import::ImportError;
use anki_sidecar::import::package::Package;
use anki_sidecar::media::upload_zip::{UploadError, read_upload};
use anki_sidecar::normal_sync::rows::{CardRow, NoteRow, RevlogRow, WireRow};
use anki_sidecar::normal_sync::wire::{
    ApplyChangesRequest, ApplyChunkRequest, ApplyGravesRequest, StartRequest,
};
use anki_sidecar::transport::body::{BodyLimits, decompress_capped, parse_json};
use anki_sidecar::transport::header::SyncHeader;
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------
// Counting allocator

struct Counting;

thread_local! {
    static CURRENT: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    let _ = CURRENT.try_with(|current| {
        let now = current.get() + delta;
        current.set(now);
        let _ = PEAK.try_with(|peak| {
            if now > peak.get() {
                peak.set(now);
            }
        });
    });
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc(layout) };
        if !pointer.is_null() {
            record(layout.size() as isize);
        }
        pointer
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let pointer = unsafe { System.alloc_zeroed(layout) };
        if !pointer.is_null() {
            record(layout.size() as isize);
        }
        pointer
    }

    unsafe fn dealloc(&self, pointer: *mut u8, layout: Layout) {
        unsafe { System.dealloc(pointer, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, pointer: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = unsafe { System.realloc(pointer, layout, new_size) };
        if !moved.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `work` and returns its result with the most heap it held at once, in bytes, above
/// what the thread held before.
fn peak_heap<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let base = CURRENT.with(Cell::get);
    PEAK.with(|peak| peak.set(base));
    let result = work();
    let peak = PEAK.with(Cell::get);
    (result, (peak - base).max(0) as usize)
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------
// Strategies

/// Any JSON value, up to a small depth: the building blocks of hostile rows.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            (-1e6f64..1e6f64),
        ]
        .prop_map(|f| json!(f)),
        (-70_000i64..70_000).prop_map(Value::from),
        Just(json!(i64::from(u32::MAX) + 1)),
        Just(json!(1i64 << 40)),
        ".{0,12}".prop_map(Value::from),
        "-?[0-9]{1,20}".prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::hash_map("[a-z]{1,4}", inner, 0..4)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

fn valid_card() -> Vec<Value> {
    serde_json::from_value(json!([
        1700000000200i64,
        1700000000100i64,
        1,
        0,
        1700000100,
        -1,
        2,
        2,
        400,
        10,
        2500,
        5,
        1,
        0,
        0,
        0,
        0,
        "{}"
    ]))
    .unwrap()
}

fn valid_note() -> Vec<Value> {
    serde_json::from_value(json!([
        1700000000100i64,
        "guid",
        1600000000000i64,
        1700000100,
        -1,
        "",
        "a\u{1f}b",
        "",
        "",
        0,
        ""
    ]))
    .unwrap()
}

fn valid_revlog() -> Vec<Value> {
    serde_json::from_value(json!([
        1700000000300i64,
        1700000000200i64,
        -1,
        3,
        10,
        -600,
        2500,
        6000,
        1
    ]))
    .unwrap()
}

/// A valid row with some columns replaced by arbitrary values, and maybe one added or
/// removed.
fn mutated(base: fn() -> Vec<Value>) -> impl Strategy<Value = Vec<Value>> {
    let len = base().len();
    (
        prop::collection::vec((0..len, any_json()), 0..4),
        prop_oneof![Just(0i8), Just(0i8), Just(-1i8), Just(1i8)],
    )
        .prop_map(move |(replacements, resize)| {
            let mut row = base();
            for (index, value) in replacements {
                row[index] = value;
            }
            match resize {
                -1 => {
                    row.pop();
                }
                1 => row.push(Value::Null),
                _ => {}
            }
            row
        })
}

// ---------------------------------------------------------------------------------------
// The client's own row types: what an accepted row must deserialize into.

#[derive(Deserialize)]
#[allow(dead_code)]
struct ClientCard {
    id: i64,
    nid: i64,
    did: i64,
    ord: u16,
    mtime: i64,
    usn: i32,
    ctype: u8,
    queue: i8,
    due: i32,
    ivl: u32,
    factor: u16,
    reps: u32,
    lapses: u32,
    left: u32,
    odue: i32,
    odid: i64,
    flags: u8,
    data: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ClientNote {
    id: i64,
    guid: String,
    mid: i64,
    mtime: i64,
    usn: i32,
    tags: String,
    fields: String,
    sfld: String,
    csum: String,
    flags: u32,
    data: String,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct ClientRevlog {
    id: i64,
    cid: i64,
    usn: i32,
    ease: u8,
    ivl: i32,
    last_ivl: i32,
    factor: u32,
    time: u32,
    kind: u8,
}

/// What the server would send for an accepted card, read back with the client's types.
fn card_fits_client(card: &CardRow) -> bool {
    let sent = json!([
        card.id,
        card.nid,
        card.did,
        card.ord,
        card.modified,
        card.usn,
        card.kind,
        card.queue,
        card.due,
        card.ivl,
        card.factor,
        card.reps,
        card.lapses,
        card.left,
        card.odue,
        card.odid,
        card.flags,
        card.data
    ]);
    serde_json::from_value::<ClientCard>(sent)
        .is_ok_and(|c| c.ctype <= 3 && (-3..=4).contains(&c.queue))
}

fn note_fits_client(note: &NoteRow) -> bool {
    let sent = json!([
        note.id,
        note.guid,
        note.mid,
        note.modified,
        note.usn,
        note.tags,
        note.fields,
        "",
        "",
        note.flags,
        note.data
    ]);
    serde_json::from_value::<ClientNote>(sent).is_ok()
}

fn revlog_fits_client(entry: &RevlogRow) -> bool {
    let sent = json!([
        entry.id,
        entry.cid,
        entry.usn,
        entry.ease,
        entry.ivl,
        entry.last_ivl,
        entry.factor,
        entry.time,
        entry.kind
    ]);
    serde_json::from_value::<ClientRevlog>(sent).is_ok_and(|r| r.kind <= 5)
}

// ---------------------------------------------------------------------------------------
// The anki-sync header

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn header_bytes_never_panic_and_stay_small(raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        let (result, peak) = peak_heap(|| SyncHeader::parse(Some(raw.as_slice())));
        if let Ok(header) = &result {
            prop_assert!((8..=11).contains(&header.version));
        } else {
            prop_assert_eq!(result.unwrap_err().status().as_u16(), 400);
        }
        prop_assert!(peak <= 4 * raw.len() + 4096, "peak {} for {} bytes", peak, raw.len());
    }

    #[test]
    fn header_shaped_json_is_accepted_only_when_well_typed(
        v in any_json(), k in any_json(), c in any_json(), s in any_json(), drop in 0usize..5,
    ) {
        let mut map = serde_json::Map::new();
        for (index, (key, value)) in [("v", v), ("k", k), ("c", c), ("s", s)].into_iter().enumerate() {
            if index != drop {
                map.insert(key.into(), value);
            }
        }
        let raw = serde_json::to_vec(&Value::Object(map.clone())).unwrap();
        match SyncHeader::parse(Some(raw.as_slice())) {
            Ok(header) => {
                prop_assert!(drop == 4, "a missing key was accepted");
                prop_assert!((8..=11).contains(&header.version));
                prop_assert!(map["k"].is_string() && map["c"].is_string() && map["s"].is_string());
            }
            Err(err) => prop_assert_eq!(err.status().as_u16(), 400),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Request bodies: zstd, then JSON

const BODY_CAP: u64 = 64 * 1024;
fn body_limits() -> BodyLimits {
    BodyLimits::sizes(16 * 1024 * 1024, BODY_CAP)
}
/// `read_to_end` may double its buffer once past the cap; the zstd reader adds a fixed input
/// buffer of about 128 KiB.
const BODY_PEAK_BOUND: usize = 2 * BODY_CAP as usize + 256 * 1024;

fn refused_status(err: &ApiError) -> u16 {
    err.status().as_u16()
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn arbitrary_bodies_are_refused_within_the_cap(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (result, peak) = peak_heap(|| decompress_capped(&raw, &body_limits()));
        match &result {
            Ok(data) => prop_assert!(data.len() as u64 <= BODY_CAP),
            Err(err) => prop_assert!(matches!(refused_status(err), 400 | 413)),
        }
        prop_assert!(peak <= BODY_PEAK_BOUND, "peak {}", peak);
    }

    /// Real zstd frames of any size: at most the cap is ever held, and past it the answer is
    /// a 413, however large the frame says it expands.
    #[test]
    fn bodies_past_the_cap_are_refused_not_allocated(
        size in 0usize..(4 * BODY_CAP as usize), byte in any::<u8>(), level in 1i32..4,
    ) {
        let payload = vec![byte; size];
        let compressed = zstd::encode_all(payload.as_slice(), level).unwrap();
        drop(payload);
        let (result, peak) = peak_heap(|| decompress_capped(&compressed, &body_limits()));
        if size as u64 <= BODY_CAP {
            let data = result.unwrap();
            prop_assert_eq!(data.len(), size);
            prop_assert!(data.iter().all(|b| *b == byte));
        } else {
            prop_assert_eq!(refused_status(&result.unwrap_err()), 413);
        }
        prop_assert!(peak <= BODY_PEAK_BOUND, "peak {} for {} bytes", peak, size);
    }

    #[test]
    fn mutated_frames_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let body = serde_json::to_vec(&json!({"chunk": {"done": true, "cards": [valid_card()], "notes": [valid_note()]}})).unwrap();
        let mut compressed = zstd::encode_all(body.as_slice(), 3).unwrap();
        for (index, byte) in flips {
            let at = index.index(compressed.len());
            compressed[at] ^= byte;
        }
        let (result, peak) = peak_heap(|| decompress_capped(&compressed, &body_limits()));
        if let Ok(data) = result {
            prop_assert!(data.len() as u64 <= BODY_CAP);
            // Whatever came out, the JSON parsers refuse it cleanly or read it.
            let _ = parse_json::<ApplyChunkRequest>(&data);
        }
        prop_assert!(peak <= BODY_PEAK_BOUND, "peak {}", peak);
    }

    #[test]
    fn request_json_of_any_shape_never_panics(value in any_json(), raw in prop::collection::vec(any::<u8>(), 0..256)) {
        let text = serde_json::to_vec(&value).unwrap();
        for bytes in [&text, &raw] {
            if let Err(err) = parse_json::<ApplyChunkRequest>(bytes) {
                prop_assert_eq!(refused_status(&err), 400);
            }
            if let Err(err) = parse_json::<ApplyGravesRequest>(bytes) {
                prop_assert_eq!(refused_status(&err), 400);
            }
            if let Err(err) = parse_json::<ApplyChangesRequest>(bytes) {
                prop_assert_eq!(refused_status(&err), 400);
            }
            if let Err(err) = parse_json::<StartRequest>(bytes) {
                prop_assert_eq!(refused_status(&err), 400);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Chunk rows

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn arbitrary_rows_are_accepted_only_when_they_fit_the_client(
        row in prop::collection::vec(any_json(), 0..20),
    ) {
        if let Ok(card) = CardRow::parse(&row) {
            prop_assert!(card_fits_client(&card));
        }
        if let Ok(note) = NoteRow::parse(&row) {
            prop_assert!(note_fits_client(&note));
        }
        if let Ok(entry) = RevlogRow::parse(&row) {
            prop_assert!(revlog_fits_client(&entry));
        }
    }

    #[test]
    fn mutated_cards_fit_the_client_or_are_refused(row in mutated(valid_card)) {
        match CardRow::parse(&row) {
            Ok(card) => {
                prop_assert_eq!(row.len(), 18);
                prop_assert!(card_fits_client(&card));
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn mutated_notes_fit_the_client_or_are_refused(row in mutated(valid_note)) {
        match NoteRow::parse(&row) {
            Ok(note) => {
                prop_assert_eq!(row.len(), 11);
                prop_assert!(note_fits_client(&note));
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }

    #[test]
    fn mutated_revlog_entries_fit_the_client_or_are_refused(row in mutated(valid_revlog)) {
        match RevlogRow::parse(&row) {
            Ok(entry) => {
                prop_assert_eq!(row.len(), 9);
                prop_assert!(revlog_fits_client(&entry));
            }
            Err(err) => prop_assert!(!err.to_string().is_empty()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Media upload zips

/// The zip reader holds `_meta` (capped at 50 KiB), a 64 KiB copy buffer and the central
/// directory; member bytes go to disk.
const ZIP_PEAK_BOUND: usize = 1024 * 1024;

fn media_zip(meta: &str, members: &[(String, Vec<u8>)], deflate: bool) -> Vec<u8> {
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let method = if deflate {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, data) in members {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(data).unwrap();
    }
    writer.start_file("_meta", options).unwrap();
    writer.write_all(meta.as_bytes()).unwrap();
    writer.finish().unwrap().into_inner()
}

fn check_upload(bytes: &[u8], cap: u64) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("upload.zip");
    std::fs::write(&path, bytes).unwrap();
    let staging = dir.path().join("staging");
    std::fs::create_dir(&staging).unwrap();
    let (result, peak) = peak_heap(|| read_upload(&path, &staging, cap));
    match result {
        Ok(entries) => {
            prop_assert!(entries.len() <= 25);
            let mut total = 0;
            for entry in &entries {
                if let Some(staged) = &entry.data {
                    let on_disk = std::fs::metadata(staged.file.path()).unwrap().len();
                    prop_assert_eq!(on_disk, staged.size);
                    prop_assert!(staged.size > 0);
                    total += staged.size;
                }
            }
            prop_assert!(total <= cap, "{} staged past the cap of {}", total, cap);
        }
        Err(UploadError::Invalid(message)) => prop_assert!(!message.is_empty()),
        Err(UploadError::Io(err)) => {
            return Err(TestCaseError::fail(format!(
                "I/O error on a readable file: {err}"
            )));
        }
    }
    prop_assert!(peak <= ZIP_PEAK_BOUND, "peak {}", peak);
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn generated_media_zips_respect_the_caps(
        files in prop::collection::vec(("[a-z]{1,6}\\.(png|mp3)", prop::collection::vec(any::<u8>(), 0..3000)), 0..30),
        deletions in prop::collection::vec("[a-z]{1,6}\\.jpg", 0..3),
        deflate in any::<bool>(),
        cap in 1u64..40_000,
    ) {
        let mut meta = Vec::new();
        let mut members = Vec::new();
        for (index, (name, data)) in files.into_iter().enumerate() {
            meta.push(json!([name, index.to_string()]));
            members.push((index.to_string(), data));
        }
        for name in deletions {
            meta.push(json!([name, null]));
        }
        let zip = media_zip(&Value::from(meta).to_string(), &members, deflate);
        check_upload(&zip, cap)?;
    }

    #[test]
    fn mutated_media_zips_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
        deflate in any::<bool>(),
    ) {
        let members = vec![
            ("0".to_string(), b"first file".repeat(50)),
            ("1".to_string(), b"second".repeat(80)),
        ];
        let mut zip = media_zip(r#"[["a.png","0"],["b.mp3","1"],["gone.jpg",null]]"#, &members, deflate);
        for (index, byte) in flips {
            let at = index.index(zip.len());
            zip[at] ^= byte;
        }
        if let Some(cut) = truncate {
            zip.truncate(cut.index(zip.len()));
        }
        check_upload(&zip, 1_000_000)?;
    }
}

// ---------------------------------------------------------------------------------------
// .apkg packages

/// The package reader holds the media map and small members; collections go to disk.
const PACKAGE_PEAK_BOUND: usize = 4 * 1024 * 1024;

fn open_package(bytes: &[u8], cap: u64) -> (Result<(), ImportError>, usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("deck.apkg");
    std::fs::write(&path, bytes).unwrap();
    let (result, peak) = peak_heap(|| Package::open(&path, dir.path(), cap).map(|_| ()));
    (result, peak)
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn mutated_packages_are_read_or_refused(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        truncate in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let mut bytes = common::packages::GenPackage::standard().package();
        for (index, byte) in flips {
            let at = index.index(bytes.len());
            bytes[at] ^= byte;
        }
        if let Some(cut) = truncate {
            bytes.truncate(cut.index(bytes.len()));
        }
        let (result, peak) = open_package(&bytes, 64 * 1024 * 1024);
        match &result {
            Ok(()) => {}
            Err(ImportError::BadPackage(message)) => prop_assert!(!message.is_empty()),
            Err(ImportError::Internal(err)) => {
                return Err(TestCaseError::fail(format!("a hostile package is not our fault: {err:#}")));
            }
        }
        prop_assert!(peak <= PACKAGE_PEAK_BOUND, "peak {}", peak);
    }

    #[test]
    fn arbitrary_bytes_are_not_a_package(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        let (result, peak) = open_package(&raw, 64 * 1024 * 1024);
        prop_assert!(matches!(result, Err(ImportError::BadPackage(_))));
        prop_assert!(peak <= PACKAGE_PEAK_BOUND, "peak {}", peak);
    }
}

#[test]
fn a_collection_past_its_cap_is_refused_not_extracted() {
    let bytes = common::packages::GenPackage::standard().package();
    let (whole, _) = open_package(&bytes, 64 * 1024 * 1024);
    assert!(whole.is_ok(), "{:?}", whole.err());
    let (result, peak) = open_package(&bytes, 1024);
    assert!(matches!(result, Err(ImportError::BadPackage(_))));
    assert!(peak <= PACKAGE_PEAK_BOUND, "peak {peak}");
}
