//! The package's media files (docs/sync-protocol.md#imported-media): which to copy, under which
//! name, and registering them in `media.db` as an upload would, so every client's next media sync
//! fetches them.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::Context;

use super::ImportError;
use super::package::{Package, PackageMedia};
use crate::media::MediaDb;
use crate::media::names;
use crate::storage::UserFiles;

/// What clients cut names to; renamed files stay within it.
const MAX_NAME_BYTES: usize = 120;

#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct MediaCounts {
    pub added: usize,
    pub renamed: usize,
    pub unchanged: usize,
}

struct StagedFile {
    name: String,
    file: tempfile::NamedTempFile,
    sha1: [u8; 20],
    size: i64,
}

/// Files written to the media folder under temporary names, waiting to be registered.
pub struct MediaPlan {
    /// The package's spelling of a name -> the name the user's notes must use.
    pub renames: HashMap<String, String>,
    staged: Vec<StagedFile>,
    pub counts: MediaCounts,
}

/// Files whose names start like this are used by templates, not notes; Anki copies them
/// whether or not a note refers to them, and never replaces the user's copy.
fn is_static(name: &str) -> bool {
    name.starts_with('_') || name.starts_with("latex-")
}

/// `<stem>-<sha1>.<ext>`, with the stem cut so that the name stays within what clients keep.
pub fn conflict_name(name: &str, sha1: &[u8; 20]) -> String {
    let hash = hex::encode(sha1);
    let (stem, extension) = match name.rfind('.') {
        Some(dot) if dot > 0 => (&name[..dot], &name[dot..]),
        _ => (name, ""),
    };
    let budget = MAX_NAME_BYTES.saturating_sub(hash.len() + 1 + extension.len());
    let mut end = budget.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    names::normalize(&format!("{}-{hash}{extension}", &stem[..end])).into_owned()
}

fn is_referenced(media: &PackageMedia, referenced: &HashSet<String>) -> bool {
    referenced.contains(&media.original_name) || referenced.contains(&media.name)
}

/// Reads the files the import needs and stages them in the user's media folder. Nothing is
/// visible to clients until `commit`.
pub fn plan(
    package: &mut Package,
    files: &UserFiles,
    referenced: &HashSet<String>,
) -> Result<MediaPlan, ImportError> {
    let mut plan = MediaPlan {
        renames: HashMap::new(),
        staged: Vec::new(),
        counts: MediaCounts::default(),
    };
    let wanted: Vec<PackageMedia> = package
        .media
        .iter()
        .filter(|media| is_static(&media.name) || is_referenced(media, referenced))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(plan);
    }
    let db = MediaDb::open(files)?;
    let media_dir = files.media_dir();
    let mut staged_names: HashSet<String> = HashSet::new();
    for media in wanted {
        let Some(bytes) = package.read_media(&media)? else {
            tracing::info!(name = %media.name, "package lists a media file it does not contain");
            continue;
        };
        let mut name = media.name.clone();
        match db.live_entry(&name)? {
            Some(existing) if existing.sha1 == bytes.sha1 => {
                plan.counts.unchanged += 1;
                if media.original_name != name {
                    plan.renames.insert(media.original_name.clone(), name);
                }
                continue;
            }
            Some(_) if is_static(&name) => {
                plan.counts.unchanged += 1;
                continue;
            }
            Some(_) => {
                name = conflict_name(&name, &bytes.sha1);
                plan.renames
                    .insert(media.original_name.clone(), name.clone());
                plan.renames.insert(media.name.clone(), name.clone());
                if db
                    .live_entry(&name)?
                    .is_some_and(|existing| existing.sha1 == bytes.sha1)
                {
                    plan.counts.unchanged += 1;
                    continue;
                }
                plan.counts.renamed += 1;
            }
            None => {
                if media.original_name != name {
                    plan.renames
                        .insert(media.original_name.clone(), name.clone());
                }
                plan.counts.added += 1;
            }
        }
        if !staged_names.insert(name.clone()) {
            continue;
        }
        let mut file = tempfile::Builder::new()
            .prefix(".import-media-")
            .tempfile_in(&media_dir)
            .context("staging a media file")?;
        file.write_all(&bytes.data)
            .and_then(|()| file.as_file().sync_all())
            .context("writing a media file")?;
        plan.staged.push(StagedFile {
            name,
            file,
            sha1: bytes.sha1,
            size: bytes.data.len() as i64,
        });
    }
    Ok(plan)
}

impl MediaPlan {
    /// Moves the staged files into place and registers each under a new media USN, in one
    /// media.db transaction. Done before the collection commits: a crash in between leaves
    /// unused files, never notes pointing at files clients cannot fetch.
    pub fn commit(self, files: &UserFiles) -> anyhow::Result<()> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let mut db = MediaDb::open(files)?;
        let media_dir = files.media_dir();
        let now = crate::clock::now_secs();
        let tx = db.transaction()?;
        for staged in self.staged {
            staged
                .file
                .persist(media_dir.join(&staged.name))
                .map_err(|err| err.error)
                .context("moving a media file into place")?;
            tx.record_file(&staged.name, &staged.sha1, staged.size, now)?;
        }
        tx.commit()?;
        std::fs::File::open(&media_dir)
            .and_then(|dir| dir.sync_all())
            .context("syncing the media folder")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflicting_names_carry_the_checksum_and_stay_short() {
        let sha1 = [0xab; 20];
        assert_eq!(
            conflict_name("pic.png", &sha1),
            format!("pic-{}.png", "ab".repeat(20))
        );
        let long = format!("{}.jpeg", "x".repeat(200));
        let renamed = conflict_name(&long, &sha1);
        assert!(renamed.len() <= MAX_NAME_BYTES, "{}", renamed.len());
        assert!(renamed.ends_with(&format!("-{}.jpeg", "ab".repeat(20))));
    }

    #[test]
    fn static_files_are_recognized() {
        assert!(is_static("_font.ttf"));
        assert!(is_static("latex-abc.png"));
        assert!(!is_static("pic.png"));
    }
}
