//! Reading an `.apkg` container (docs/sync-protocol.md#package-versions): which version it is, its
//! collection as a schema-11 file, and its media map. Everything a hostile package could get wrong
//! is refused here, before anything of the user's is touched.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use prost::Message;
use sha1::{Digest, Sha1};

use super::ImportError;
use crate::collection::intake;
use crate::media::names;
use crate::spool;

/// The official server's cap on one media file.
pub const MAX_MEDIA_FILE_BYTES: u64 = 100 * 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PackageFormat {
    /// `collection.anki2`, JSON media map: genanki and old Anki versions.
    Legacy1,
    /// `collection.anki21`, JSON media map.
    Legacy2,
    /// `collection.anki21b` (zstd, schema 18), protobuf media map, zstd media members.
    Latest,
}

impl PackageFormat {
    fn collection_member(self) -> &'static str {
        match self {
            Self::Legacy1 => "collection.anki2",
            Self::Legacy2 => "collection.anki21",
            Self::Latest => "collection.anki21b",
        }
    }
}

#[derive(Clone, PartialEq, prost::Message)]
struct PackageMetadata {
    #[prost(int32, tag = "1")]
    version: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MediaEntries {
    #[prost(message, repeated, tag = "1")]
    entries: Vec<MediaEntryProto>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct MediaEntryProto {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(uint32, tag = "2")]
    size: u32,
    #[prost(bytes = "vec", tag = "3")]
    sha1: Vec<u8>,
}

/// One media file the package says it carries.
#[derive(Clone, Debug)]
pub struct PackageMedia {
    /// The normalized name the file will have.
    pub name: String,
    /// The name the package's notes use, if it differs (legacy names are normalized).
    pub original_name: String,
    /// The zip member holding the bytes.
    pub member: String,
    /// Latest packages state the SHA-1 of the uncompressed bytes.
    pub declared_sha1: Option<[u8; 20]>,
}

/// A media file's bytes, read and checked.
pub struct MediaBytes {
    pub data: Vec<u8>,
    pub sha1: [u8; 20],
}

pub struct Package {
    archive: zip::ZipArchive<File>,
    pub format: PackageFormat,
    /// The package's collection, extracted and converted to schema 11.
    pub collection: tempfile::NamedTempFile,
    pub media: Vec<PackageMedia>,
}

fn bad(message: impl Into<String>) -> ImportError {
    ImportError::BadPackage(message.into())
}

impl Package {
    /// Opens the package at `path`, extracting its collection into `scratch_dir`. A collection
    /// may expand to at most `max_collection_bytes`.
    pub fn open(
        path: &Path,
        scratch_dir: &Path,
        max_collection_bytes: u64,
    ) -> Result<Self, ImportError> {
        let file = File::open(path)?;
        let mut archive = zip::ZipArchive::new(file)
            .map_err(|err| bad(format!("the package is not a valid zip file: {err}")))?;
        let format = detect_format(&mut archive)?;
        let collection =
            extract_collection(&mut archive, format, scratch_dir, max_collection_bytes)?;
        check_and_convert(collection.path())?;
        let media = read_media_map(&mut archive, format)?;
        Ok(Self {
            archive,
            format,
            collection,
            media,
        })
    }

    /// Reads one media file. `Ok(None)` when the package lists it but lacks the member, which
    /// Anki tolerates (the reference simply stays broken).
    pub fn read_media(&mut self, media: &PackageMedia) -> Result<Option<MediaBytes>, ImportError> {
        let member = match self.archive.by_name(&media.member) {
            Ok(member) => member,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(err) => {
                return Err(bad(format!(
                    "media member {:?} is unreadable: {err}",
                    media.member
                )));
            }
        };
        let data = if self.format == PackageFormat::Latest {
            let decoder = zstd::stream::read::Decoder::new(member).map_err(|err| {
                bad(format!(
                    "media member {:?} is not valid zstd: {err}",
                    media.member
                ))
            })?;
            read_capped(decoder, MAX_MEDIA_FILE_BYTES, &media.name)?
        } else {
            read_capped(member, MAX_MEDIA_FILE_BYTES, &media.name)?
        };
        if data.is_empty() {
            // Clients treat an empty file as a deletion; it cannot be delivered as a file.
            return Ok(None);
        }
        let sha1: [u8; 20] = Sha1::digest(&data).into();
        if let Some(declared) = media.declared_sha1
            && declared != sha1
        {
            return Err(bad(format!(
                "media file {:?} does not match its checksum",
                media.name
            )));
        }
        Ok(Some(MediaBytes { data, sha1 }))
    }
}

fn read_capped(reader: impl Read, cap: u64, what: &str) -> Result<Vec<u8>, ImportError> {
    let mut data = Vec::new();
    reader
        .take(cap + 1)
        .read_to_end(&mut data)
        .map_err(|err| bad(format!("{what:?} is unreadable: {err}")))?;
    if data.len() as u64 > cap {
        return Err(bad(format!(
            "{what:?} is larger than {} MiB",
            cap / (1024 * 1024)
        )));
    }
    Ok(data)
}

fn has_member(archive: &mut zip::ZipArchive<File>, name: &str) -> bool {
    archive.index_for_name(name).is_some()
}

fn detect_format(archive: &mut zip::ZipArchive<File>) -> Result<PackageFormat, ImportError> {
    if has_member(archive, "meta") {
        let member = archive
            .by_name("meta")
            .map_err(|err| bad(format!("the meta member is unreadable: {err}")))?;
        let bytes = read_capped(member, 64 * 1024, "meta")?;
        let meta = PackageMetadata::decode(bytes.as_slice())
            .map_err(|err| bad(format!("the meta member is not valid: {err}")))?;
        return match meta.version {
            1 => Ok(PackageFormat::Legacy1),
            2 => Ok(PackageFormat::Legacy2),
            3 => Ok(PackageFormat::Latest),
            other => Err(bad(format!(
                "package version {other} is not supported (made by a newer Anki?)"
            ))),
        };
    }
    if has_member(archive, "collection.anki21") {
        Ok(PackageFormat::Legacy2)
    } else {
        Ok(PackageFormat::Legacy1)
    }
}

fn extract_collection(
    archive: &mut zip::ZipArchive<File>,
    format: PackageFormat,
    scratch_dir: &Path,
    cap: u64,
) -> Result<tempfile::NamedTempFile, ImportError> {
    let name = format.collection_member();
    let member = match archive.by_name(name) {
        Ok(member) => member,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(bad(format!(
                "the package has no collection (member {name} is missing)"
            )));
        }
        Err(err) => return Err(bad(format!("{name} is unreadable: {err}"))),
    };
    let mut target = tempfile::Builder::new()
        .prefix(".import-col-")
        .tempfile_in(scratch_dir)?;
    let copied = if format == PackageFormat::Latest {
        let decoder = zstd::stream::read::Decoder::new(member)
            .map_err(|err| bad(format!("{name} is not valid zstd: {err}")))?;
        copy_capped(decoder, target.as_file_mut(), cap, name)?
    } else {
        copy_capped(member, target.as_file_mut(), cap, name)?
    };
    tracing::debug!(
        member = name,
        bytes = copied,
        "extracted the package collection"
    );
    Ok(target)
}

fn copy_capped(
    reader: impl Read,
    writer: &mut File,
    cap: u64,
    what: &str,
) -> Result<u64, ImportError> {
    spool::copy_capped(reader, writer, cap).map_err(|err| match err {
        spool::Error::TooLarge { .. } => bad(format!(
            "{what} expands past the {} MiB limit",
            cap / (1024 * 1024)
        )),
        spool::Error::Read(err) => bad(format!("{what} is unreadable: {err}")),
        other => ImportError::Internal(other.into()),
    })
}

/// Checks the extracted file is an intact collection of a supported schema, and rewrites it
/// to schema 11, the form the merge reads.
fn check_and_convert(path: &Path) -> Result<(), ImportError> {
    use intake::{IntakeError, Step};
    let conn =
        intake::check_and_convert(path, intake::Source::Package).map_err(|err| match err {
            IntakeError::TooShort => bad("the package's collection is too short to be SQLite"),
            IntakeError::NotSqlite => bad("the package's collection is not an SQLite file"),
            IntakeError::Sqlite {
                step: Step::Open,
                error,
            } => bad(format!(
                "the package's collection cannot be opened: {error}"
            )),
            IntakeError::Sqlite {
                step: Step::IntegrityQuery,
                error,
            } => bad(format!("the package's collection is corrupt: {error}")),
            IntakeError::Integrity(report) => {
                bad(format!("the package's collection is corrupt: {report}"))
            }
            IntakeError::UnsupportedVersion(version) => bad(format!(
                "the package's collection has schema version {version}; 11 and 14-18 are supported"
            )),
            IntakeError::Sqlite { error, .. } => {
                bad(format!("the package's collection is not usable: {error}"))
            }
            IntakeError::Conversion(err) => {
                bad(format!("the package's collection is not usable: {err}"))
            }
            IntakeError::ColRows(rows) => bad(format!(
                "the package's collection is not usable: col has {rows} rows"
            )),
        })?;
    // Modern packages arrive in WAL mode; leave no journal files behind in the scratch dir.
    conn.query_row("PRAGMA journal_mode = DELETE", [], |_| Ok(()))
        .map_err(|err| bad(format!("the package's collection is not usable: {err}")))?;
    Ok(())
}

/// A name from a package must be one plain file name: anything that could point elsewhere
/// (separators, `..`, NUL) marks the package as hostile.
fn check_single_component(name: &str) -> Result<(), ImportError> {
    let hostile =
        name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']);
    if hostile {
        return Err(bad(format!(
            "media file name {name:?} is not a plain file name"
        )));
    }
    Ok(())
}

fn read_media_map(
    archive: &mut zip::ZipArchive<File>,
    format: PackageFormat,
) -> Result<Vec<PackageMedia>, ImportError> {
    let member = match archive.by_name("media") {
        Ok(member) => member,
        // Old AnkiDroid packages had no map; Anki treats that as no media.
        Err(zip::result::ZipError::FileNotFound) => return Ok(Vec::new()),
        Err(err) => return Err(bad(format!("the media map is unreadable: {err}"))),
    };
    let mut seen = HashSet::new();
    let mut media = Vec::new();
    if format == PackageFormat::Latest {
        let decoder = zstd::stream::read::Decoder::new(member)
            .map_err(|err| bad(format!("the media map is not valid zstd: {err}")))?;
        let bytes = read_capped(decoder, 64 * 1024 * 1024, "media")?;
        let entries = MediaEntries::decode(bytes.as_slice())
            .map_err(|err| bad(format!("the media map is not valid: {err}")))?;
        for (index, entry) in entries.entries.into_iter().enumerate() {
            check_single_component(&entry.name)?;
            if names::normalize(&entry.name) != entry.name.as_str() {
                return Err(bad(format!(
                    "media file name {:?} is not normalized",
                    entry.name
                )));
            }
            names::validate(&entry.name).map_err(|err| bad(err.to_string()))?;
            let sha1: [u8; 20] = entry.sha1.as_slice().try_into().map_err(|_| {
                bad(format!(
                    "media file {:?} has a malformed checksum",
                    entry.name
                ))
            })?;
            if seen.insert(entry.name.clone()) {
                media.push(PackageMedia {
                    original_name: entry.name.clone(),
                    name: entry.name,
                    member: index.to_string(),
                    declared_sha1: Some(sha1),
                });
            }
        }
    } else {
        let bytes = read_capped(member, 64 * 1024 * 1024, "media")?;
        let map: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes)
            .map_err(|err| bad(format!("the media map is not a JSON object: {err}")))?;
        for (member, value) in map {
            let Some(original) = value.as_str() else {
                return Err(bad(format!("media map entry {member:?} is not a name")));
            };
            check_single_component(original)?;
            let normalized = names::normalize(original).into_owned();
            names::validate(&normalized).map_err(|err| bad(err.to_string()))?;
            if seen.insert(normalized.clone()) {
                media.push(PackageMedia {
                    name: normalized,
                    original_name: original.to_string(),
                    member,
                    declared_sha1: None,
                });
            }
        }
    }
    Ok(media)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_names_are_refused() {
        for name in ["../evil.png", "a/b.png", "..", "a\\b", "x\0y", ""] {
            assert!(check_single_component(name).is_err(), "{name:?}");
        }
        assert!(check_single_component("..evil.png").is_ok());
        assert!(check_single_component("pic.png").is_ok());
    }

    #[test]
    fn the_meta_member_is_a_small_protobuf() {
        assert_eq!(
            PackageMetadata { version: 3 }.encode_to_vec(),
            vec![0x08, 0x03]
        );
    }
}
