//! Reading a client's `uploadChanges` zip (docs/sync-protocol.md#media-upload) with caps on entry
//! count, entry size and total size, so a hostile archive gets a 400 instead of filling disk or
//! memory. Everything is validated and staged before anything is applied.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::Value;
use sha1::{Digest, Sha1};

use super::names;

/// The client puts at most 25 files in one zip.
pub const MAX_ENTRIES: usize = 25;
/// Clients never upload larger files; the official server reads at most this much.
pub const MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
const MAX_META_BYTES: u64 = 50 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

fn invalid(message: impl Into<String>) -> UploadError {
    UploadError::Invalid(message.into())
}

/// A file received in the zip, written to a temp file next to the media folder.
pub struct StagedFile {
    pub file: tempfile::NamedTempFile,
    pub sha1: [u8; 20],
    pub size: u64,
}

pub struct UploadEntry {
    pub name: String,
    /// None: the client deleted the file.
    pub data: Option<StagedFile>,
}

/// Parses `_meta` (`[[name, member or null or ""], …]`) and stages every member.
pub fn read_upload(
    zip_path: &Path,
    staging_dir: &Path,
    max_total_bytes: u64,
) -> Result<Vec<UploadEntry>, UploadError> {
    let mut archive = zip::ZipArchive::new(std::fs::File::open(zip_path)?)
        .map_err(|err| invalid(format!("invalid zip: {err}")))?;
    if archive.len() > MAX_ENTRIES + 1 {
        return Err(invalid(format!(
            "zip has {} members; at most {MAX_ENTRIES} files are allowed",
            archive.len() - 1
        )));
    }
    let meta: Vec<(String, Option<String>)> = {
        let mut member = archive
            .by_name("_meta")
            .map_err(|_| invalid("zip has no _meta member"))?;
        let mut text = Vec::new();
        // A corrupt member (bad deflate data, wrong checksum) is the client's fault: a 400.
        (&mut member)
            .take(MAX_META_BYTES)
            .read_to_end(&mut text)
            .map_err(|err| invalid(format!("_meta is unreadable: {err}")))?;
        parse_meta(&text)?
    };
    if meta.len() > MAX_ENTRIES {
        return Err(invalid(format!(
            "_meta lists {} entries; at most {MAX_ENTRIES}",
            meta.len()
        )));
    }

    let mut seen_names = HashSet::new();
    let mut referenced_members = HashSet::new();
    for (name, member) in &meta {
        names::validate(name).map_err(|err| invalid(err.to_string()))?;
        if !seen_names.insert(name.clone()) {
            return Err(invalid(format!("_meta lists {name:?} twice")));
        }
        if let Some(member) = member
            && !referenced_members.insert(member.clone())
        {
            return Err(invalid(format!("_meta references member {member:?} twice")));
        }
    }
    let actual_members: HashSet<String> = archive
        .file_names()
        .filter(|member| *member != "_meta")
        .map(str::to_string)
        .collect();
    if actual_members != referenced_members {
        return Err(invalid("_meta does not match the zip's members"));
    }

    let mut total: u64 = 0;
    let mut entries = Vec::with_capacity(meta.len());
    for (name, member) in meta {
        let data = match member {
            None => None,
            Some(member) => {
                let mut source = archive
                    .by_name(&member)
                    .map_err(|err| invalid(format!("member {member:?}: {err}")))?;
                let staged = stage(&mut source, staging_dir, &name)?;
                total += staged.size;
                if total > max_total_bytes {
                    return Err(invalid("zip contents exceed the upload size limit"));
                }
                Some(staged)
            }
        };
        entries.push(UploadEntry { name, data });
    }
    Ok(entries)
}

fn parse_meta(text: &[u8]) -> Result<Vec<(String, Option<String>)>, UploadError> {
    let value: Value =
        serde_json::from_slice(text).map_err(|err| invalid(format!("_meta is not JSON: {err}")))?;
    let pairs = value
        .as_array()
        .ok_or_else(|| invalid("_meta is not an array"))?;
    pairs
        .iter()
        .map(|pair| {
            let pair = pair
                .as_array()
                .filter(|pair| pair.len() == 2)
                .ok_or_else(|| invalid("_meta entries must be [name, member] pairs"))?;
            let name = pair[0]
                .as_str()
                .ok_or_else(|| invalid("_meta file name is not a string"))?
                .to_string();
            // Older clients and AnkiDroid write "" where current ones write null.
            let member = match &pair[1] {
                Value::Null => None,
                Value::String(member) if member.is_empty() => None,
                Value::String(member) => Some(member.clone()),
                _ => return Err(invalid("_meta member name is not a string")),
            };
            Ok((name, member))
        })
        .collect()
}

fn stage(
    source: &mut impl Read,
    staging_dir: &Path,
    name: &str,
) -> Result<StagedFile, UploadError> {
    let mut file = tempfile::Builder::new()
        .prefix(".media-upload-")
        .tempfile_in(staging_dir)?;
    let mut hasher = Sha1::new();
    let mut limited = source.take(MAX_FILE_BYTES + 1);
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size: u64 = 0;
    loop {
        let read = limited
            .read(&mut buffer)
            .map_err(|err| invalid(format!("file {name:?}: {err}")))?;
        if read == 0 {
            break;
        }
        size += read as u64;
        if size > MAX_FILE_BYTES {
            return Err(invalid(format!("file {name:?} is larger than 100 MiB")));
        }
        hasher.update(&buffer[..read]);
        file.write_all(&buffer[..read])?;
    }
    if size == 0 {
        return Err(invalid(format!("file {name:?} is empty")));
    }
    file.as_file().sync_all()?;
    Ok(StagedFile {
        file,
        sha1: hasher.finalize().into(),
        size,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use zip::write::SimpleFileOptions;

    pub fn make_zip(meta: &str, members: &[(&str, &[u8])], deflate: bool) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            .large_file(true);
        for (name, data) in members {
            writer.start_file(*name, options).unwrap();
            writer.write_all(data).unwrap();
        }
        writer.start_file("_meta", options).unwrap();
        writer.write_all(meta.as_bytes()).unwrap();
        writer.finish().unwrap().into_inner()
    }

    fn read(bytes: &[u8]) -> Result<Vec<UploadEntry>, UploadError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("upload.zip");
        std::fs::write(&path, bytes).unwrap();
        read_upload(&path, dir.path(), 300 * 1024 * 1024)
    }

    #[test]
    fn reads_files_and_deletions() {
        let zip = make_zip(
            r#"[["a.png","0"],["gone.mp3",null],["old.jpg",""]]"#,
            &[("0", b"png")],
            false,
        );
        let entries = read(&zip).unwrap();
        assert_eq!(entries.len(), 3);
        let staged = entries[0].data.as_ref().unwrap();
        assert_eq!(staged.size, 3);
        assert_eq!(hex::encode(staged.sha1), hex::encode(Sha1::digest(b"png")));
        assert!(entries[1].data.is_none() && entries[2].data.is_none());
    }

    #[test]
    fn refuses_hostile_archives() {
        let cases: Vec<Vec<u8>> = vec![
            b"not a zip".to_vec(),
            make_zip(r#"[["../x","0"]]"#, &[("0", b"x")], false),
            make_zip(r#"[["a.png","0"]]"#, &[("0", b"x"), ("1", b"extra")], false),
            make_zip(r#"[["a.png","1"]]"#, &[("0", b"x")], false),
            make_zip(r#"[["a.png","0"]]"#, &[("0", b"")], false),
            make_zip(r#"{"a.png":"0"}"#, &[("0", b"x")], false),
            make_zip(r#"[["a.png","0"],["a.png",null]]"#, &[("0", b"x")], false),
        ];
        for (index, zip) in cases.iter().enumerate() {
            assert!(
                matches!(read(zip), Err(UploadError::Invalid(_))),
                "case {index}"
            );
        }
    }

    #[test]
    fn a_corrupt_meta_member_is_invalid_not_an_io_error() {
        let meta = format!(r#"[["a.png","0"]]{}"#, " ".repeat(4000));
        let mut zip = make_zip(&meta, &[("0", b"png")], true);
        // The last local header is _meta's; its data follows the name and extra field.
        let header = zip
            .windows(4)
            .rposition(|window| window == b"PK\x03\x04")
            .unwrap();
        let name_len = u16::from_le_bytes([zip[header + 26], zip[header + 27]]) as usize;
        let extra_len = u16::from_le_bytes([zip[header + 28], zip[header + 29]]) as usize;
        let data = header + 30 + name_len + extra_len;
        assert_eq!(&zip[header + 30..header + 30 + name_len], b"_meta");
        zip[data + 2] ^= 0x55;
        assert!(matches!(read(&zip), Err(UploadError::Invalid(_))));
    }

    #[test]
    fn refuses_a_zip_bomb_without_writing_it_out() {
        // 150 MiB of zeros deflates to well under 1 MiB.
        let zeros = vec![0u8; 150 * 1024 * 1024];
        let zip = make_zip(r#"[["bomb.bin","0"]]"#, &[("0", &zeros)], true);
        drop(zeros);
        assert!(zip.len() < 1024 * 1024);
        assert!(matches!(read(&zip), Err(UploadError::Invalid(_))));
    }
}
