//! Spooling: writing bytes of unknown and possibly hostile size to a file, piece by piece,
//! refusing them as soon as they pass a cap. A request body goes to a temporary file this way
//! ([`body_to_temp_file`]), and so does a decompressed or extracted stream ([`copy_capped`]),
//! so that no copy is ever held in memory whole.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use axum::body::Body;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

/// The size of the pieces [`copy_capped`] reads and writes.
const PIECE: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// More bytes came than the cap allows; what was written so far is incomplete.
    #[error("more than {cap} bytes")]
    TooLarge { cap: u64 },
    /// The source could not be read (for a decoder: the data is not in its format).
    #[error("{0}")]
    Read(std::io::Error),
    /// The request body failed while it was being received.
    #[error("{0}")]
    Body(axum::Error),
    /// The next piece of the body did not come within the allowed pause.
    #[error("the body stalled")]
    TimedOut,
    /// The temporary file could not be created or written.
    #[error("{0}")]
    Write(std::io::Error),
}

/// Copies `reader` into `writer` until the end, and returns the number of bytes copied; fails
/// with [`Error::TooLarge`] as soon as more than `cap` bytes have been read.
pub fn copy_capped(mut reader: impl Read, writer: &mut impl Write, cap: u64) -> Result<u64, Error> {
    let mut buffer = vec![0u8; PIECE];
    let mut total = 0u64;
    loop {
        let read = reader.read(&mut buffer).map_err(Error::Read)?;
        if read == 0 {
            break;
        }
        total += read as u64;
        if total > cap {
            return Err(Error::TooLarge { cap });
        }
        writer.write_all(&buffer[..read]).map_err(Error::Write)?;
    }
    writer.flush().map_err(Error::Write)?;
    Ok(total)
}

/// Streams a request body into a new temporary file in `dir` (named `<prefix>…<suffix>`), and
/// returns it with the number of bytes written. Fails with [`Error::TooLarge`] as soon as the
/// body passes `cap` bytes, and with [`Error::TimedOut`] when `piece_timeout` is set and a
/// sender pauses longer than that between two pieces. `on_piece` sees every piece before it is
/// written, e.g. to hash the body on the way.
pub async fn body_to_temp_file(
    body: Body,
    dir: &Path,
    (prefix, suffix): (&str, &str),
    cap: u64,
    piece_timeout: Option<Duration>,
    mut on_piece: impl FnMut(&[u8]),
) -> Result<(tempfile::NamedTempFile, u64), Error> {
    let spooled = tempfile::Builder::new()
        .prefix(prefix)
        .suffix(suffix)
        .tempfile_in(dir)
        .map_err(Error::Write)?;
    let mut writer = tokio::fs::File::from_std(spooled.reopen().map_err(Error::Write)?);
    let mut stream = body.into_data_stream();
    let mut written: u64 = 0;
    loop {
        let next = match piece_timeout {
            Some(timeout) => tokio::time::timeout(timeout, stream.next())
                .await
                .map_err(|_| Error::TimedOut)?,
            None => stream.next().await,
        };
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(Error::Body)?;
        written += chunk.len() as u64;
        if written > cap {
            return Err(Error::TooLarge { cap });
        }
        on_piece(&chunk);
        writer.write_all(&chunk).await.map_err(Error::Write)?;
    }
    writer.flush().await.map_err(Error::Write)?;
    drop(writer);
    Ok((spooled, written))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_up_to_the_cap_and_refuses_past_it() {
        let mut out = Vec::new();
        assert_eq!(copy_capped(&[7u8; 1000][..], &mut out, 1000).unwrap(), 1000);
        assert_eq!(out, vec![7u8; 1000]);
        assert!(matches!(
            copy_capped(&[7u8; 1001][..], &mut Vec::new(), 1000),
            Err(Error::TooLarge { cap: 1000 })
        ));
    }

    #[tokio::test]
    async fn streams_a_body_to_a_file_showing_every_piece() {
        let dir = tempfile::tempdir().unwrap();
        let mut seen = 0;
        let (file, written) = body_to_temp_file(
            Body::from(vec![1u8; 300]),
            dir.path(),
            (".test-", ".bin"),
            300,
            None,
            |piece| seen += piece.len(),
        )
        .await
        .unwrap();
        assert_eq!((written, seen), (300, 300));
        assert_eq!(std::fs::read(file.path()).unwrap(), vec![1u8; 300]);
        assert!(
            file.path()
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with(".bin")
        );
        assert!(matches!(
            body_to_temp_file(
                Body::from(vec![1u8; 301]),
                dir.path(),
                (".test-", ""),
                300,
                Some(Duration::from_secs(60)),
                |_| {},
            )
            .await,
            Err(Error::TooLarge { cap: 300 })
        ));
    }
}
