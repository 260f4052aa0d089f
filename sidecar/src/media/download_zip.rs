//! Building the `downloadFiles` zip (docs/sync-protocol.md#media-download): a prefix of the
//! requested names, in order, cut after the file that takes the total past 2.5 MiB.

use std::io::{Read, Write};

use zip::write::SimpleFileOptions;

use super::MediaDb;
use crate::storage::UserFiles;

pub const MAX_FILES_PER_REQUEST: usize = 25;
const SIZE_CUT: u64 = 5 * 1024 * 1024 / 2;

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    #[error("at most {MAX_FILES_PER_REQUEST} files per request")]
    TooMany,
    /// The client asked for a file the server does not have (409 on the wire).
    #[error("no such media file {0:?}")]
    Missing(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub fn build_download(
    files: &UserFiles,
    db: &mut MediaDb,
    requested: &[String],
) -> Result<tempfile::NamedTempFile, DownloadError> {
    if requested.len() > MAX_FILES_PER_REQUEST {
        return Err(DownloadError::TooMany);
    }
    let output = tempfile::Builder::new()
        .prefix(".media-download-")
        .tempfile_in(files.dir())
        .map_err(anyhow::Error::from)?;
    let mut writer = zip::ZipWriter::new(output.reopen().map_err(anyhow::Error::from)?);
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Stored)
        .large_file(true);
    let mut mapping = serde_json::Map::new();
    let mut total: u64 = 0;
    for (index, name) in requested.iter().enumerate() {
        if db.live_entry(name)?.is_none() {
            return Err(DownloadError::Missing(name.clone()));
        }
        let path = files.media_dir().join(name);
        let mut source = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                // The record outlived its file: forget it so the client stops asking.
                let tx = db.transaction()?;
                tx.forget(name)?;
                tx.commit()?;
                tracing::warn!(name, "media file missing on disk; forgot its record");
                return Err(DownloadError::Missing(name.clone()));
            }
            Err(err) => return Err(DownloadError::Other(err.into())),
        };
        let member = index.to_string();
        writer
            .start_file(member.as_str(), options)
            .map_err(anyhow::Error::from)?;
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let read = source.read(&mut buffer).map_err(anyhow::Error::from)?;
            if read == 0 {
                break;
            }
            writer
                .write_all(&buffer[..read])
                .map_err(anyhow::Error::from)?;
            total += read as u64;
        }
        mapping.insert(member, serde_json::Value::from(name.clone()));
        if total > SIZE_CUT {
            break;
        }
    }
    writer
        .start_file("_meta", options)
        .map_err(anyhow::Error::from)?;
    writer
        .write_all(
            serde_json::to_string(&mapping)
                .map_err(anyhow::Error::from)?
                .as_bytes(),
        )
        .map_err(anyhow::Error::from)?;
    writer.finish().map_err(anyhow::Error::from)?;
    Ok(output)
}
