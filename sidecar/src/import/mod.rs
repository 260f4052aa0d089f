//! Server-side import of `.apkg` packages into a user's collection
//! (docs/design.md#server-side-import, docs/sync-protocol.md#merge-rules,
//! docs/sync-protocol.md#making-imports-visible), so that the user's next sync delivers them.
//!
//! The merge follows Anki's importer without scheduling: notetypes by id and schema, decks by
//! name, notes by GUID. Every written object gets the server's current usn and `col.mod` is
//! set to now; `scm` is never touched, so no client is pushed into a full sync.
//!
//! Order of effects, for crash safety: the package is checked completely before anything is
//! written; media files are staged, then registered in `media.db`; the collection transaction
//! commits last. A crash in between leaves at most unused media, and a retry (same
//! `Idempotency-Key`) finds the notes already there.

pub mod cards;
pub mod decks;
pub mod ids;
pub mod ledger;
pub mod media;
pub mod media_refs;
pub mod notes;
pub mod notetypes;
pub mod package;
pub mod source;

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::clock::now_millis;
use crate::collection::col_row::col;
use crate::collection::json::ColObjects;
use crate::collection::sqlite;
use crate::storage::UserFiles;
use crate::storage::status::ensure_collection;
use package::{Package, PackageFormat};
use source::SourceCollection;

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The package is corrupt or hostile; nothing was changed.
    #[error("{0}")]
    BadPackage(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

crate::internal_from::internal_from!(ImportError: rusqlite::Error, std::io::Error);

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PackageCounts {
    pub format: String,
    pub notes: usize,
    pub cards: usize,
    pub media_files: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoteSummary {
    pub added: usize,
    pub updated: usize,
    /// Same GUID and not newer, or the GUID belongs to a note of another notetype.
    pub skipped: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct CardSummary {
    pub added: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeckSummary {
    pub added: usize,
    pub matched: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct NotetypeSummary {
    pub added: usize,
    pub updated: usize,
    pub matched: usize,
}

/// The answer of the import API.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ImportSummary {
    pub import_id: i64,
    /// True when this answer is the stored one of an earlier push with the same key.
    pub replayed: bool,
    pub package: PackageCounts,
    pub notes: NoteSummary,
    pub cards: CardSummary,
    pub decks: DeckSummary,
    pub notetypes: NotetypeSummary,
    pub media: media::MediaCounts,
}

#[derive(Debug, Clone, Copy)]
pub struct ImportLimits {
    /// How far a package's collection may expand when extracted.
    pub max_collection_bytes: u64,
}

fn format_name(format: PackageFormat) -> &'static str {
    match format {
        PackageFormat::Legacy1 => "legacy1",
        PackageFormat::Legacy2 => "legacy2",
        PackageFormat::Latest => "latest",
    }
}

/// Merges the package at `package_path` into the user's collection, creating the collection
/// for a user who never synced. The caller holds the user's lock with no normal sync open.
pub fn apply_package(
    files: &UserFiles,
    package_path: &Path,
    limits: ImportLimits,
) -> Result<ImportSummary, ImportError> {
    let started = std::time::Instant::now();
    files.ensure_dir().context("creating the user folder")?;
    let mut package = Package::open(package_path, files.dir(), limits.max_collection_bytes)?;
    let source = SourceCollection::read(package.collection.path())?;

    ensure_collection(files)?;
    let mut conn =
        sqlite::open_collection(&files.collection()).context("opening the collection")?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let usn = col(&tx).usn()?;
    let mut target = ColObjects::load(&tx)?;
    let now_ms = now_millis();

    let used_decks: BTreeSet<i64> = source.cards.iter().map(|card| card.deck_id).collect();
    let deck_outcome = decks::merge(&source.objects, &used_decks, &mut target, usn, now_ms);
    let used_notetypes: BTreeSet<i64> = source.notes.iter().map(|note| note.notetype_id).collect();
    let notetype_outcome = notetypes::merge(
        &source.objects,
        &used_notetypes,
        &mut target,
        &deck_outcome.ids,
        usn,
        now_ms,
    )?;
    let planned = notes::plan(&tx, &source.notes, &notetype_outcome, now_ms)?;
    let media_plan = media::plan(&mut package, files, &notes::referenced_media(&planned))?;
    let note_counts = notes::write(
        &tx,
        &planned,
        &notetype_outcome,
        &media_plan.renames,
        &mut target,
        usn,
    )?;
    let cards_added = cards::write(
        &tx,
        &source.cards,
        &planned,
        &notetype_outcome,
        &deck_outcome.ids,
        &mut target,
        usn,
        now_ms,
    )?;
    target.save(&tx)?;
    col(&tx).set_modified(now_ms)?;

    let media_counts = media_plan.counts;
    media_plan.commit(files)?;
    tx.commit().context("committing the import")?;

    let summary = ImportSummary {
        import_id: 0,
        replayed: false,
        package: PackageCounts {
            format: format_name(package.format).into(),
            notes: source.notes.len(),
            cards: source.cards.len(),
            media_files: package.media.len(),
        },
        notes: NoteSummary {
            added: note_counts.added,
            updated: note_counts.updated,
            skipped: note_counts.skipped,
        },
        cards: CardSummary { added: cards_added },
        decks: DeckSummary {
            added: deck_outcome.added,
            matched: deck_outcome.matched,
        },
        notetypes: NotetypeSummary {
            added: notetype_outcome.added,
            updated: notetype_outcome.updated,
            matched: notetype_outcome.matched,
        },
        media: media_counts,
    };
    tracing::info!(
        format = summary.package.format,
        notes_added = summary.notes.added,
        notes_updated = summary.notes.updated,
        notes_skipped = summary.notes.skipped,
        cards_added,
        decks_added = summary.decks.added,
        notetypes_added = summary.notetypes.added,
        media_added = media_counts.added + media_counts.renamed,
        usn,
        ms = started.elapsed().as_millis() as u64,
        "package imported"
    );
    Ok(summary)
}

/// Re-applies the imports no client has received, after a full upload replaced the
/// collection they were merged into. Failures are logged and the import stays pending.
pub fn reapply_pending(files: &UserFiles, limits: ImportLimits) -> anyhow::Result<usize> {
    let Some(ledger) = ledger::Ledger::open_existing(files)? else {
        return Ok(0);
    };
    let mut reapplied = 0;
    for pending in ledger.pending()? {
        match apply_package(files, &pending.package, limits) {
            Ok(summary) => {
                ledger.mark_reapplied(pending.id)?;
                reapplied += 1;
                tracing::info!(
                    import_id = pending.id,
                    notes_added = summary.notes.added,
                    "undelivered import re-applied after a full upload"
                );
            }
            Err(err) => {
                tracing::error!(import_id = pending.id, error = %err, "re-applying an undelivered import failed");
            }
        }
    }
    Ok(reapplied)
}
