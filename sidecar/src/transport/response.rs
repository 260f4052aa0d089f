//! Successful v11 responses: a zstd body plus `anki-original-size`
//! (docs/sync-protocol.md#responses).
//!
//! The client refuses a 200 without that header, and the header must hold the *uncompressed*
//! length, so it is always known before the first byte is sent.

use std::cell::RefCell;
use std::io::{Read, Write};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use super::legacy::{Wire, current_wire};
use crate::error::ApiResult;

pub const ORIGINAL_SIZE_HEADER: &str = "anki-original-size";

/// Level 1 keeps latency low; sync payloads are mostly JSON and SQLite pages, which compress
/// well even at the fastest level.
const ZSTD_LEVEL: i32 = 1;
const INLINE_COMPRESS_LIMIT: usize = 64 * 1024;
const STREAM_CHUNK: usize = 256 * 1024;

/// Answers up to this size are sent stored ([`stored_frame`]), not compressed. Most answers of a
/// sync (`null`, `{"done":true}`, a usn, a small JSON object) are this small; compressing them
/// at level 1 costs 0.2 to 6 microseconds, mostly building entropy tables, to save at most a
/// few hundred bytes of an answer that fits one TCP segment with its headers either way.
/// Storing costs about 30 nanoseconds.
const STORED_LIMIT: usize = 300;
const _: () = assert!(
    STORED_LIMIT < 256 + 65536,
    "the two-byte size field holds the size"
);

pub struct SyncResponse(Response);

/// `data` as one zstd frame holding a single raw (stored) block: what zstd itself writes for
/// input it cannot shrink, and what every zstd decoder reads (RFC 8878, section 3.1.1). The
/// frame header is single-segment (the window is the content size) and declares the content
/// size in one byte, or in two bytes minus 256; the block header says last block, raw, and its
/// size. For at most [`STORED_LIMIT`] bytes.
fn stored_frame(data: &[u8]) -> Vec<u8> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    let mut frame = Vec::with_capacity(data.len() + 9);
    frame.extend_from_slice(&MAGIC);
    match u8::try_from(data.len()) {
        Ok(size) => frame.extend_from_slice(&[0x20, size]),
        Err(_) => {
            let size = u16::try_from(data.len() - 256).expect("at most STORED_LIMIT bytes");
            frame.push(0x60);
            frame.extend_from_slice(&size.to_le_bytes());
        }
    }
    let block = (data.len() as u32) << 3 | 1;
    frame.extend_from_slice(&block.to_le_bytes()[..3]);
    frame.extend_from_slice(data);
    frame
}

/// Compresses a small answer with this thread's compression context. Creating a zstd context
/// costs more than compressing a few kilobytes of JSON, and every request answers something,
/// so each thread keeps one (about 1 MB at level 1) and reuses it. The smallest answers are
/// stored instead ([`STORED_LIMIT`]).
fn compress_small(data: &[u8]) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { RefCell::new(None) };
    }
    if data.len() <= STORED_LIMIT {
        return Ok(stored_frame(data));
    }
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        let compressor = match slot.as_mut() {
            Some(compressor) => compressor,
            None => slot.insert(zstd::bulk::Compressor::new(ZSTD_LEVEL)?),
        };
        compressor.compress(data)
    })
}

impl SyncResponse {
    /// A raw payload (JSON text, `OK`, a zip) compressed in one piece.
    pub async fn bytes(data: Vec<u8>) -> ApiResult<Self> {
        if current_wire() != Wire::V11 {
            // Legacy clients read answers as they are, with no size header.
            let size = data.len() as u64;
            return Ok(Self::plain(size, Body::from(data)));
        }
        let original_size = data.len() as u64;
        let compressed = if data.len() <= INLINE_COMPRESS_LIMIT {
            compress_small(&data)
        } else {
            tokio::task::spawn_blocking(move || zstd::encode_all(&data[..], ZSTD_LEVEL)).await?
        }?;
        Ok(Self::with_body(original_size, Body::from(compressed)))
    }

    pub async fn json<T: Serialize>(value: &T) -> ApiResult<Self> {
        let data = serde_json::to_vec(value)?;
        Self::bytes(data).await
    }

    /// Streams a file, compressing it on the fly on a blocking thread, so that a large
    /// collection is never held whole in memory. The file is deleted once sent.
    pub fn file(file: tempfile::NamedTempFile) -> ApiResult<Self> {
        let size = file.as_file().metadata()?.len();
        let plain = current_wire() != Wire::V11;
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tokio::task::spawn_blocking(move || {
            let result = if plain {
                copy_file_into_channel(&file, &sender)
            } else {
                compress_file_into_channel(&file, &sender)
            };
            if let Err(err) = result {
                // The client sees a truncated body and fails its checksum; nothing else to do.
                tracing::warn!(error = %err, "streaming a download failed");
                let _ = sender.blocking_send(Err(err));
            }
        });
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|item| (item, receiver))
        });
        let body = Body::from_stream(stream);
        Ok(if plain {
            Self::plain(size, body)
        } else {
            Self::with_body(size, body)
        })
    }

    /// An uncompressed answer for a legacy client: no `anki-original-size`, a plain length.
    fn plain(size: u64, body: Body) -> Self {
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        headers.insert(
            axum::http::header::CONTENT_LENGTH,
            HeaderValue::from_str(&size.to_string()).expect("digits are a valid header"),
        );
        Self(response)
    }

    fn with_body(original_size: u64, body: Body) -> Self {
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::OK;
        response.headers_mut().insert(
            ORIGINAL_SIZE_HEADER,
            HeaderValue::from_str(&original_size.to_string()).expect("digits are a valid header"),
        );
        Self(response)
    }
}

impl IntoResponse for SyncResponse {
    fn into_response(self) -> Response {
        self.0
    }
}

/// Writes compressed output into the channel in chunks as the encoder produces it.
struct ChannelWriter<'a> {
    sender: &'a tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    pending: Vec<u8>,
}

impl ChannelWriter<'_> {
    fn send_pending(&mut self) -> std::io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChannelWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        if self.pending.len() >= STREAM_CHUNK {
            self.send_pending()?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send_pending()
    }
}

fn copy_file_into_channel(
    file: &tempfile::NamedTempFile,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> std::io::Result<()> {
    let mut source = file.reopen()?;
    let mut writer = ChannelWriter {
        sender,
        pending: Vec::with_capacity(STREAM_CHUNK),
    };
    std::io::copy(&mut source, &mut writer)?;
    writer.flush()
}

fn compress_file_into_channel(
    file: &tempfile::NamedTempFile,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) -> std::io::Result<()> {
    let mut source = std::io::BufReader::new(file.reopen()?);
    let writer = ChannelWriter {
        sender,
        pending: Vec::with_capacity(STREAM_CHUNK),
    };
    let mut encoder = zstd::stream::write::Encoder::new(writer, ZSTD_LEVEL)?;
    let mut buffer = vec![0u8; STREAM_CHUNK];
    loop {
        let read = source.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        encoder.write_all(&buffer[..read])?;
    }
    let mut writer = encoder.finish()?;
    writer.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn decode(response: SyncResponse) -> (u64, Vec<u8>) {
        let response = response.into_response();
        let size: u64 = response.headers()[ORIGINAL_SIZE_HEADER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (size, zstd::decode_all(&body[..]).unwrap())
    }

    #[tokio::test]
    async fn json_responses_carry_the_original_size() {
        let (size, body) = decode(
            SyncResponse::json(&serde_json::json!({"a": 1}))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(body, br#"{"a":1}"#);
        assert_eq!(size, 7);
    }

    #[test]
    fn one_thread_reuses_its_compression_context_for_every_answer() {
        // Answers of different sizes, one after the other on the same thread: each frame
        // must stand alone, with nothing carried over from the previous one.
        let big: Vec<u8> = (0..60_000u32).map(|i| (i % 97) as u8).collect();
        for data in [
            &b"{\"a\":1}"[..],
            &big[..],
            &b""[..],
            &b"OK"[..],
            &big[..1000],
        ] {
            let compressed = compress_small(data).unwrap();
            assert_eq!(zstd::decode_all(&compressed[..]).unwrap(), data);
        }
    }

    /// Sizes on both sides of the stored answers' limit and of the one-byte size field.
    fn answers() -> Vec<Vec<u8>> {
        let json = |size: usize| -> Vec<u8> {
            let unit = br#"{"id":1700000000123,"usn":4711,"flds":"front\u001fback"},"#;
            let mut text = b"[".to_vec();
            while text.len() < size {
                text.extend_from_slice(unit);
            }
            text.truncate(size);
            text
        };
        let mut answers = vec![
            b"".to_vec(),
            b"null".to_vec(),
            b"4711".to_vec(),
            br#"{"done":true}"#.to_vec(),
        ];
        for size in [
            40,
            255,
            256,
            257,
            STORED_LIMIT - 1,
            STORED_LIMIT,
            STORED_LIMIT + 1,
            5000,
        ] {
            answers.push(json(size));
        }
        answers
    }

    #[test]
    fn small_answers_are_stored_frames_any_zstd_decoder_reads() {
        let mut decompressor = zstd::bulk::Decompressor::new().unwrap();
        for data in answers() {
            let frame = compress_small(&data).unwrap();
            assert_eq!(
                zstd::decode_all(&frame[..]).unwrap(),
                data,
                "{}",
                data.len()
            );
            // As the client decodes: in one call, with room for one byte more than announced.
            assert_eq!(
                decompressor.decompress(&frame, data.len() + 1).unwrap(),
                data
            );
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
                Some(data.len() as u64)
            );
            if data.len() <= STORED_LIMIT {
                assert_eq!(frame.len(), data.len() + 9 + usize::from(data.len() > 255));
                assert!(frame.ends_with(&data));
            } else {
                // Bigger answers are compressed, at the level they always were.
                assert_eq!(
                    frame,
                    zstd::bulk::compress(&data, ZSTD_LEVEL).unwrap(),
                    "{}",
                    data.len()
                );
                assert!(frame.len() < data.len());
            }
        }
    }

    #[tokio::test]
    async fn stored_and_compressed_answers_carry_the_original_size() {
        for data in answers() {
            let (size, body) = decode(SyncResponse::bytes(data.clone()).await.unwrap()).await;
            assert_eq!(size, data.len() as u64);
            assert_eq!(body, data);
        }
        let (size, body) = decode(SyncResponse::json(&()).await.unwrap()).await;
        assert_eq!((size, &body[..]), (4, &b"null"[..]));
    }

    #[tokio::test]
    async fn legacy_answers_are_plain() {
        let response = super::super::legacy::with_wire(Wire::Legacy { gzip: true }, async {
            SyncResponse::bytes(b"OK".to_vec()).await.unwrap()
        })
        .await
        .into_response();
        assert!(response.headers().get(ORIGINAL_SIZE_HEADER).is_none());
        assert_eq!(response.headers()["content-length"], "2");
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"OK");

        let mut file = tempfile::NamedTempFile::new().unwrap();
        let content: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let response = super::super::legacy::with_wire(Wire::Legacy { gzip: false }, async {
            SyncResponse::file(file).unwrap()
        })
        .await
        .into_response();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], &content[..]);
    }

    #[tokio::test]
    async fn files_stream_compressed() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        let content: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).unwrap();
        let (size, body) = decode(SyncResponse::file(file).unwrap()).await;
        assert_eq!(size, content.len() as u64);
        assert_eq!(body, content);
    }
}
