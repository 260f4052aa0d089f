//! The protobuf messages stored in schema-18 blob columns (docs/sync-protocol.md#schema-18-blobs),
//! generated at build time from `proto/schema18.proto` (see build.rs). Field numbers follow
//! Anki's proto files.

#![allow(clippy::derive_partial_eq_without_eq)]

include!(concat!(env!("OUT_DIR"), "/schema18.rs"));

/// `decks.kind`: a normal or a filtered deck.
pub use deck_kind_container::Kind as DeckKind;
