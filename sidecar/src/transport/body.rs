//! Reading zstd request bodies with caps on both the compressed and the decompressed size.
//! A legacy request's `data` part (gzip or raw) goes through the same readers and caps; the
//! request's [`Wire`] says which decoder applies.
//!
//! Clients stream bodies chunked, without `Content-Length` (docs/sync-protocol.md#requests), so
//! axum's default 2 MB limit is disabled on the sync routes and the caps are enforced here, while
//! reading.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::legacy::{Wire, current_wire};
use crate::error::{ApiError, ApiResult};
use crate::limits::BUDGET_UNIT;
use crate::spool;

/// Bodies smaller than this are parsed inline; larger ones off the async executor.
const INLINE_PARSE_LIMIT: usize = 64 * 1024;
/// Decompression works in pieces of this size, yielding to other tasks in between.
const DECOMPRESS_PIECE: usize = 64 * 1024;
/// The first bytes of every in-memory body are not charged to the shared budget, so that the
/// small calls of real syncs never wait behind large hostile bodies.
const FREE_BYTES: u64 = 256 * 1024;
/// Largest zstd window accepted (8 MiB): what compression levels 1 to 19 produce. A frame may
/// ask the decoder for a window of up to 2 GiB, allocated before any output; this refuses
/// such frames cheaply.
const MAX_WINDOW_LOG: u32 = 23;
/// What one JSON item may cost once parsed (a `serde_json::Value`, a map slot, growth).
const BYTES_PER_ITEM: u64 = 64;

pub use crate::limits::BodyLimits;

fn compressed_too_large(limits: &BodyLimits) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "request body exceeds the limit of {} bytes",
        limits.max_compressed
    ))
}

fn uncompressed_too_large(limits: &BodyLimits) -> ApiError {
    ApiError::PayloadTooLarge(format!(
        "decompressed request body exceeds the limit of {} bytes",
        limits.max_uncompressed
    ))
}

fn body_read_error(err: axum::Error) -> ApiError {
    ApiError::bad_request(format!("failed to read request body: {err}"))
}

fn body_timeout() -> ApiError {
    ApiError::RequestTimeout("request body not received in time".into())
}

/// The decoder of a body in the given wire format: for v11 one zstd frame whose window may
/// not pass `MAX_WINDOW_LOG`; for the legacy protocol gzip, or the bytes as they are.
fn decoder<'a, R: std::io::BufRead + Send + 'a>(
    wire: Wire,
    source: R,
) -> std::io::Result<Box<dyn Read + Send + 'a>> {
    Ok(match wire {
        Wire::V11 => {
            let mut decoder = zstd::stream::read::Decoder::with_buffer(source)?.single_frame();
            decoder.window_log_max(MAX_WINDOW_LOG)?;
            Box::new(decoder)
        }
        Wire::Legacy { gzip: true } => Box::new(flate2::bufread::GzDecoder::new(source)),
        Wire::Legacy { gzip: false } => Box::new(source),
    })
}

fn not_decodable(wire: Wire, err: std::io::Error) -> ApiError {
    match wire {
        Wire::V11 => ApiError::bad_request(format!("body is not valid zstd: {err}")),
        Wire::Legacy { .. } => ApiError::bad_request(format!("data part is not valid gzip: {err}")),
    }
}

/// The memory a decoder needs for the first (and only read) frame of `compressed`: its window,
/// read from the frame header, plus a block. `None` when the header is not a zstd frame's
/// (the decoder then refuses it).
pub fn frame_window(compressed: &[u8]) -> Option<u64> {
    const MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
    const BLOCK: u64 = 128 * 1024;
    if compressed.get(..4)? != MAGIC {
        return None;
    }
    let descriptor = *compressed.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    let window = if single_segment {
        // No window descriptor: the window is the content size, stored after the dictionary id.
        let dictionary_bytes = [0usize, 1, 2, 4][(descriptor & 3) as usize];
        let size_bytes = [1usize, 2, 4, 8][(descriptor >> 6) as usize];
        let start = 5 + dictionary_bytes;
        let field = compressed.get(start..start + size_bytes)?;
        let mut size = 0u64;
        for (i, byte) in field.iter().enumerate() {
            size |= u64::from(*byte) << (8 * i);
        }
        if size_bytes == 2 {
            size += 256;
        }
        size
    } else {
        let byte = *compressed.get(5)?;
        let log = 10 + u64::from(byte >> 3);
        let base = 1u64.checked_shl(log as u32)?;
        base + (base / 8) * u64::from(byte & 7)
    };
    Some(window.min(1 << MAX_WINDOW_LOG) + BLOCK)
}

/// Counts JSON items as the text streams by: every `[`, `{`, `,` and `:` outside strings.
/// That is at least the number of values and keys less one, so it bounds what parsing can
/// allocate, whatever the shape (40 million zeros are 40 million items).
#[derive(Debug, Default)]
pub struct JsonItems {
    in_string: bool,
    escaped: bool,
    pub count: u64,
}

impl JsonItems {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            if self.in_string {
                if self.escaped {
                    self.escaped = false;
                } else if byte == b'\\' {
                    self.escaped = true;
                } else if byte == b'"' {
                    self.in_string = false;
                }
            } else {
                match byte {
                    b'"' => self.in_string = true,
                    b'[' | b'{' | b',' | b':' => self.count += 1,
                    _ => {}
                }
            }
        }
    }
}

/// Memory taken from the shared budget for one body; given back when dropped.
struct Reservation {
    budget: Option<Arc<Semaphore>>,
    held: Option<OwnedSemaphorePermit>,
    charged: u64,
    free_left: u64,
    deadline: Instant,
}

impl Reservation {
    fn new(limits: &BodyLimits, deadline: Instant) -> Self {
        Self {
            budget: limits.budget.clone(),
            held: None,
            charged: 0,
            free_left: FREE_BYTES,
            deadline,
        }
    }

    /// Charges `bytes`. A body that holds no memory yet waits in line for it (until the
    /// deadline); one that already holds some gets more only if it is free now, and is
    /// otherwise refused as busy (503), giving back what it holds. Nobody waits while holding
    /// memory, so bodies cannot block each other, and the accounting stays exact.
    async fn charge(&mut self, bytes: u64) -> ApiResult<()> {
        let Some(budget) = &self.budget else {
            return Ok(());
        };
        let free = bytes.min(self.free_left);
        self.free_left -= free;
        self.charged += bytes - free;
        let held_units = self
            .held
            .as_ref()
            .map_or(0, |permit| permit.num_permits() as u64);
        let needed = self
            .charged
            .div_ceil(BUDGET_UNIT)
            .saturating_sub(held_units);
        if needed == 0 {
            return Ok(());
        }
        let busy = || ApiError::Busy("server busy; try again in a moment".into());
        let units = u32::try_from(needed).map_err(|_| busy())?;
        let permit = if self.held.is_none() {
            tokio::time::timeout_at(self.deadline, budget.clone().acquire_many_owned(units))
                .await
                .map_err(|_| busy())?
                .map_err(|_| busy())?
        } else {
            budget
                .clone()
                .try_acquire_many_owned(units)
                .map_err(|_| busy())?
        };
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        Ok(())
    }
}

/// Collects the compressed body, refusing it as soon as it passes the compressed cap or the
/// deadline.
async fn collect_compressed(
    body: Body,
    limits: &BodyLimits,
    reservation: &mut Reservation,
) -> ApiResult<Vec<u8>> {
    let mut stream = body.into_data_stream();
    let mut data = Vec::new();
    loop {
        let next = tokio::time::timeout_at(reservation.deadline, stream.next())
            .await
            .map_err(|_| body_timeout())?;
        let Some(chunk) = next else {
            break;
        };
        let chunk = chunk.map_err(body_read_error)?;
        if (data.len() + chunk.len()) as u64 > limits.max_compressed {
            return Err(compressed_too_large(limits));
        }
        reservation.charge(chunk.len() as u64).await?;
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// A compressed v11 body at most this long whose frame's window is at most
/// [`SMALL_WINDOW`] is decoded in one piece with this thread's decompression context.
const SMALL_COMPRESSED: usize = 16 * 1024;
/// The largest window (as [`frame_window`] counts it) a small body may ask for: what a
/// streaming encoder at level 3 declares when it does not know the size (2 MiB). Bounds the
/// memory a thread's context keeps; bodies are decoded on the async workers, so there are as
/// many contexts as workers.
const SMALL_WINDOW: u64 = (2 << 20) + 128 * 1024;
/// How much a small body may decode to in one piece; more goes the streamed way.
const SMALL_OUTPUT: usize = 256 * 1024;

/// Decodes a small v11 body in one piece, without yielding, with a decompression context kept
/// per thread: creating a zstd context costs more than decoding the few hundred bytes of a
/// typical sync call. The caps hold as on the streamed path: the window is checked before
/// decoding, the output may not pass `SMALL_OUTPUT` (nor the decompressed cap), and the JSON
/// items are counted. `None` when the body is not small, or decodes to more than
/// `SMALL_OUTPUT`: the streamed path then handles it from the start.
///
/// A frame that declares its content size, within the cap, is decoded in one call into a
/// buffer of that size ([`decode_declared`]); any other, and any frame that call refuses, is
/// read through a decoder ([`decode_streamed`]), which decides the result.
fn decompress_small(compressed: &[u8], limits: &BodyLimits) -> Option<ApiResult<(Vec<u8>, u64)>> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    if compressed.len() > SMALL_COMPRESSED || frame_window(compressed)? > SMALL_WINDOW {
        return None;
    }
    let cap = (limits.max_uncompressed as usize).min(SMALL_OUTPUT);
    let decoded = CONTEXT.with(|cell| {
        let mut slot = cell.borrow_mut();
        let context = match slot.as_mut() {
            Some(context) => context,
            None => slot.insert(zstd::zstd_safe::DCtx::try_create()?),
        };
        if let Some(out) = decode_declared(context, compressed, cap) {
            return Some(Ok(out));
        }
        decode_streamed(context, compressed, cap)
    })?;
    let out = match decoded {
        Ok(out) => out,
        Err(err) => return Some(Err(not_decodable(Wire::V11, err))),
    };
    if out.len() > cap {
        // Bigger than a small body may be: the streamed path decides, with its charges.
        return None;
    }
    let mut items = JsonItems::default();
    if let Some(max_items) = limits.max_items {
        items.feed(&out);
        if items.count > max_items {
            return Some(Err(ApiError::PayloadTooLarge(format!(
                "request body holds more than {max_items} JSON items"
            ))));
        }
    }
    Some(Ok((out, items.count)))
}

/// Decodes the first frame of `compressed` in one call, when its header declares a content size
/// of at most `cap`: the output is allocated once, at that size, with no streaming buffers.
/// Only the first frame is decoded, as [`decode_streamed`] reads only that one (what follows
/// it is ignored there too). `None` when the size is not declared or larger than `cap`, or when
/// the frame is not decoded to exactly the declared size (corrupt, truncated, or lying about its
/// size): the caller then reads it as before, and that decides the result, so one-shot decoding
/// changes no answer.
fn decode_declared(
    context: &mut zstd::zstd_safe::DCtx<'static>,
    compressed: &[u8],
    cap: usize,
) -> Option<Vec<u8>> {
    let size = zstd::zstd_safe::get_frame_content_size(compressed).ok()??;
    if size > cap as u64 {
        return None;
    }
    let frame = compressed.get(..zstd::zstd_safe::find_frame_compressed_size(compressed).ok()?)?;
    // As on the streamed path, though decoding into a buffer allocates no window; the caller has
    // checked the frame's window already.
    context
        .set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(MAX_WINDOW_LOG))
        .ok()?;
    let mut out = Vec::with_capacity(size as usize);
    let written = context.decompress(&mut out, frame).ok()?;
    (written as u64 == size && out.len() == written).then_some(out)
}

/// Reads the first frame of `compressed` through a decoder using `context`, stopping one byte
/// past `cap`. `None` if the decoder cannot be set up.
fn decode_streamed(
    context: &mut zstd::zstd_safe::DCtx<'static>,
    compressed: &[u8],
    cap: usize,
) -> Option<std::io::Result<Vec<u8>>> {
    let mut decoder = zstd::stream::read::Decoder::with_context(compressed, context).single_frame();
    if decoder.window_log_max(MAX_WINDOW_LOG).is_err() {
        return None;
    }
    let mut out = Vec::new();
    let read = (&mut decoder)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map(|_| out);
    Some(read)
}

/// Decodes a body held in memory: a small v11 one in one piece ([`decompress_small`]), any
/// other in pieces ([`decompress_counted`]).
async fn decompress_body(
    wire: Wire,
    compressed: &[u8],
    limits: &BodyLimits,
    reservation: &mut Reservation,
) -> ApiResult<(Vec<u8>, u64)> {
    if wire == Wire::V11
        && let Some(decoded) = decompress_small(compressed, limits)
    {
        let (out, items) = decoded?;
        reservation.charge(out.capacity() as u64).await?;
        return Ok((out, items));
    }
    decompress_counted(wire, compressed, limits, reservation).await
}

/// Decompresses in pieces, stopping at the decompressed cap and, for JSON, at the item cap,
/// and charging every piece to the budget before keeping it.
async fn decompress_counted(
    wire: Wire,
    compressed: &[u8],
    limits: &BodyLimits,
    reservation: &mut Reservation,
) -> ApiResult<(Vec<u8>, u64)> {
    // The decoder's window is allocated before any output, at a size the sender chose.
    reservation
        .charge(frame_window(compressed).unwrap_or(0) + DECOMPRESS_PIECE as u64)
        .await?;
    let mut decoder = decoder(wire, compressed).map_err(|err| not_decodable(wire, err))?;
    let mut items = JsonItems::default();
    let mut out: Vec<u8> = Vec::new();
    let mut piece = vec![0u8; DECOMPRESS_PIECE];
    loop {
        let read = decoder
            .read(&mut piece)
            .map_err(|err| not_decodable(wire, err))?;
        if read == 0 {
            break;
        }
        if (out.len() + read) as u64 > limits.max_uncompressed {
            return Err(uncompressed_too_large(limits));
        }
        if out.len() + read > out.capacity() {
            // Grow by doubling, but charge the new capacity before allocating it.
            let capacity = (out.capacity() * 2)
                .max(out.len() + read)
                .min(limits.max_uncompressed as usize);
            reservation
                .charge((capacity - out.capacity()) as u64)
                .await?;
            out.reserve_exact(capacity - out.len());
        }
        if let Some(max_items) = limits.max_items {
            items.feed(&piece[..read]);
            if items.count > max_items {
                return Err(ApiError::PayloadTooLarge(format!(
                    "request body holds more than {max_items} JSON items"
                )));
            }
        }
        out.extend_from_slice(&piece[..read]);
        tokio::task::yield_now().await;
    }
    Ok((out, items.count))
}

/// Decompresses a zstd buffer, failing once the output passes `max_uncompressed`.
pub fn decompress_capped(compressed: &[u8], limits: &BodyLimits) -> ApiResult<Vec<u8>> {
    decompress_wire(Wire::V11, compressed, limits)
}

/// Decodes a body of the given wire format, failing once the output passes `max_uncompressed`.
pub fn decompress_wire(wire: Wire, compressed: &[u8], limits: &BodyLimits) -> ApiResult<Vec<u8>> {
    let decoder = decoder(wire, compressed).map_err(|err| not_decodable(wire, err))?;
    let mut out = Vec::new();
    decoder
        .take(limits.max_uncompressed.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|err| not_decodable(wire, err))?;
    if out.len() as u64 > limits.max_uncompressed {
        return Err(uncompressed_too_large(limits));
    }
    Ok(out)
}

/// Reads and decompresses a whole body into memory, within the caps, the deadline and the
/// shared budget. For JSON requests, which are small by protocol.
pub async fn read_bytes(body: Body, limits: &BodyLimits) -> ApiResult<Vec<u8>> {
    let wire = current_wire();
    let mut reservation = Reservation::new(limits, Instant::now() + limits.timeout);
    let compressed = collect_compressed(body, limits, &mut reservation).await?;
    let (bytes, _) = decompress_body(wire, &compressed, limits, &mut reservation).await?;
    Ok(bytes)
}

/// Reads a JSON body. `{}`-style empty inputs work because they are still valid JSON.
/// The memory taken is bounded before parsing: the sizes are capped, the items counted, and
/// the cost of the parsed value charged to the shared budget until parsing is done.
pub async fn read_json<T: DeserializeOwned + Send + 'static>(
    body: Body,
    limits: BodyLimits,
) -> ApiResult<T> {
    Ok(read_json_sized(body, limits).await?.0)
}

/// [`read_json`], with the length of the JSON text (after decompression) beside the value.
pub async fn read_json_sized<T: DeserializeOwned + Send + 'static>(
    body: Body,
    limits: BodyLimits,
) -> ApiResult<(T, usize)> {
    let wire = current_wire();
    let mut reservation = Reservation::new(&limits, Instant::now() + limits.timeout);
    let compressed = collect_compressed(body, &limits, &mut reservation).await?;
    let (bytes, items) = decompress_body(wire, &compressed, &limits, &mut reservation).await?;
    drop(compressed);
    // Parsing copies strings (through a scratch buffer when they hold escapes).
    let parse_cost = (bytes.len() as u64)
        .saturating_mul(2)
        .saturating_add(items.saturating_mul(BYTES_PER_ITEM));
    reservation.charge(parse_cost).await?;
    let length = bytes.len();
    let parsed = if length <= INLINE_PARSE_LIMIT {
        parse_json(&bytes)
    } else {
        tokio::task::spawn_blocking(move || parse_json(&bytes)).await?
    };
    drop(reservation);
    Ok((parsed?, length))
}

pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|err| ApiError::bad_request(format!("invalid JSON body: {err}")))
}

/// Why a spooled body could not be kept.
#[derive(Debug)]
pub enum SpoolError {
    /// Past one of the caps. Full uploads answer this with a protocol sentence, not a status.
    TooLarge,
    Api(ApiError),
}

impl From<ApiError> for SpoolError {
    fn from(err: ApiError) -> Self {
        SpoolError::Api(err)
    }
}

/// Streams a (possibly huge) body to disk: the compressed bytes go to one temporary file in
/// `dir`, and are then decompressed into a second one, so that neither copy is held in memory.
/// The result lives in `dir` so that it can later be renamed over a file there atomically.
pub async fn read_to_file(
    body: Body,
    limits: BodyLimits,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, SpoolError> {
    let (compressed, _) = spool::body_to_temp_file(
        body,
        dir,
        (".upload-zst-", ""),
        limits.max_compressed,
        // A slow sender may take long, but may not stop: each piece must come in time.
        Some(limits.timeout),
        |_| {},
    )
    .await
    .map_err(|err| match err {
        spool::Error::TooLarge { .. } => SpoolError::TooLarge,
        spool::Error::TimedOut => SpoolError::Api(body_timeout()),
        spool::Error::Body(err) => SpoolError::Api(body_read_error(err)),
        spool::Error::Read(err) | spool::Error::Write(err) => SpoolError::Api(err.into()),
    })?;

    let dir = dir.to_path_buf();
    let wire = current_wire();
    tokio::task::spawn_blocking(move || decompress_file(wire, compressed, limits, &dir))
        .await
        .map_err(ApiError::from)?
}

fn decompress_file(
    wire: Wire,
    compressed: tempfile::NamedTempFile,
    limits: BodyLimits,
    dir: &Path,
) -> Result<tempfile::NamedTempFile, SpoolError> {
    let internal = |err: std::io::Error| SpoolError::Api(err.into());
    let mut plain = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(dir)
        .map_err(internal)?;
    let source = std::io::BufReader::new(compressed.reopen().map_err(internal)?);
    let decoder = decoder(wire, source).map_err(|err| SpoolError::Api(not_decodable(wire, err)))?;
    spool::copy_capped(decoder, &mut plain, limits.max_uncompressed).map_err(|err| match err {
        spool::Error::TooLarge { .. } => SpoolError::TooLarge,
        spool::Error::Read(err) => SpoolError::Api(not_decodable(wire, err)),
        spool::Error::Write(err) => internal(err),
        other => SpoolError::Api(ApiError::internal(other)),
    })?;
    // Not synced: the file is a scratch copy until its user (a full upload) syncs what it
    // keeps once, before renaming it into place; a media zip is read and thrown away.
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits::sizes(1024, 4096)
    }

    fn json_limits(max_items: u64) -> BodyLimits {
        BodyLimits {
            max_items: Some(max_items),
            ..BodyLimits::sizes(1 << 20, 64 << 20)
        }
    }

    /// `data` as one zstd frame that declares a window of `2^window_log` bytes.
    fn frame_with_window(window_log: u32, data: &[u8]) -> Vec<u8> {
        let mut encoder = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
        encoder.window_log(window_log).unwrap();
        encoder.write_all(data).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_small_body_is_decoded_in_one_piece_as_the_streamed_way_does() {
        let json = br#"{"minUsn": 0, "lnewer": true, "graves": null}"#;
        for frame in [
            zstd::bulk::compress(&json[..], 1).unwrap(),
            zstd::encode_all(&json[..], 3).unwrap(),
        ] {
            let (out, items) = decompress_small(&frame, &json_limits(100))
                .expect("a small body")
                .unwrap();
            assert_eq!(out, json);
            assert_eq!(items, 6);
        }
        // Twice on the same thread: the kept context starts each body afresh.
        let first = zstd::encode_all(&b"{\"a\": 1}"[..], 1).unwrap();
        let cut = &first[..first.len() - 3];
        assert!(decompress_small(cut, &json_limits(100)).unwrap().is_err());
        let (out, _) = decompress_small(&first, &json_limits(100))
            .unwrap()
            .unwrap();
        assert_eq!(out, b"{\"a\": 1}");
    }

    #[test]
    fn a_small_body_keeps_the_caps() {
        // Past the item cap: refused in one piece.
        let items = zstd::encode_all(&b"[1,2,3,4,5,6]"[..], 1).unwrap();
        let err = decompress_small(&items, &json_limits(3))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.status(), 413);
        // Past the small output: left to the streamed path, which applies the real caps.
        let bomb = zstd::encode_all(&vec![b'a'; 1 << 20][..], 1).unwrap();
        assert!(bomb.len() <= SMALL_COMPRESSED);
        assert!(decompress_small(&bomb, &json_limits(u64::MAX)).is_none());
        // A frame asking for a big window is not decoded with a kept context.
        assert!(decompress_small(&frame_with_window(23, b"{}"), &limits()).is_none());
    }

    /// What the kept context's decoder reads from `compressed`, as every small body was decoded
    /// before one-shot decoding: the reference the one-shot path must match.
    fn streamed(compressed: &[u8], cap: usize) -> Result<Vec<u8>, String> {
        let mut context = zstd::zstd_safe::DCtx::create();
        decode_streamed(&mut context, compressed, cap)
            .unwrap()
            .map_err(|err| err.to_string())
    }

    fn declared(compressed: &[u8], cap: usize) -> Option<Vec<u8>> {
        decode_declared(&mut zstd::zstd_safe::DCtx::create(), compressed, cap)
    }

    #[test]
    fn a_body_declaring_its_size_is_decoded_in_one_shot_as_the_streamed_way_does() {
        let big: Vec<u8> = (0..20_000u32)
            .map(|i| b"{}[],:ab"[i as usize % 8])
            .collect();
        let mut checked = zstd::bulk::Compressor::new(3).unwrap();
        checked
            .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
            .unwrap();
        for plain in [&b""[..], b"null", br#"{"done":true}"#, &big[..]] {
            for frame in [
                zstd::bulk::compress(plain, 1).unwrap(),
                zstd::bulk::compress(plain, 19).unwrap(),
                checked.compress(plain).unwrap(),
            ] {
                assert_eq!(
                    zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
                    Some(plain.len() as u64)
                );
                let out = declared(&frame, SMALL_OUTPUT).expect("decoded in one shot");
                assert_eq!(out, plain);
                assert_eq!(out.capacity(), plain.len(), "allocated once, at the size");
                assert_eq!(streamed(&frame, SMALL_OUTPUT).unwrap(), plain);
                let (small, _) = decompress_small(&frame, &json_limits(u64::MAX))
                    .expect("a small body")
                    .unwrap();
                assert_eq!(small, plain);
            }
        }
    }

    #[tokio::test]
    async fn a_frame_declaring_more_than_the_cap_is_not_decoded_in_one_shot() {
        let plain = vec![b'a'; 10_000];
        let frame = zstd::bulk::compress(&plain[..], 1).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
            Some(10_000)
        );
        assert!(declared(&frame, 9_999).is_none());
        assert_eq!(declared(&frame, 10_000).unwrap(), plain);
        // Past the decompressed cap (4096): streamed, and refused as before.
        assert!(decompress_small(&frame, &limits()).is_none());
        let err = read_bytes(Body::from(frame), &limits()).await.unwrap_err();
        assert_eq!(err.status(), 413);
        // Past the small output: streamed, and handed on to the pieces, which decode it.
        let plain = vec![b'a'; SMALL_OUTPUT + 1];
        let frame = zstd::bulk::compress(&plain[..], 1).unwrap();
        assert!(frame.len() <= SMALL_COMPRESSED);
        assert!(decompress_small(&frame, &json_limits(u64::MAX)).is_none());
        let out = read_bytes(Body::from(frame), &json_limits(u64::MAX))
            .await
            .unwrap();
        assert_eq!(out, plain);
    }

    #[test]
    fn a_frame_whose_declared_size_lies_is_refused() {
        // One-shot frames of under 256 bytes keep their size in the byte after the descriptor
        // (single segment, one-byte size field, no dictionary).
        let plain = br#"{"minUsn": 0, "lnewer": true}"#;
        let honest = zstd::bulk::compress(&plain[..], 1).unwrap();
        assert_eq!(honest[4] & 0xE3, 0x20);
        assert_eq!(usize::from(honest[5]), plain.len());
        for size in [0, 1, plain.len() - 1, plain.len() + 1, 255] {
            let mut lying = honest.clone();
            lying[5] = size as u8;
            assert_eq!(
                zstd::zstd_safe::get_frame_content_size(&lying).unwrap(),
                Some(size as u64)
            );
            assert!(declared(&lying, SMALL_OUTPUT).is_none(), "size {size}");
            assert!(streamed(&lying, SMALL_OUTPUT).is_err(), "size {size}");
            let err = decompress_small(&lying, &json_limits(100))
                .unwrap()
                .unwrap_err();
            assert_eq!(err.status(), 400, "size {size}");
        }
    }

    #[test]
    fn a_body_without_a_declared_size_is_still_decoded() {
        let plain = br#"{"minUsn": 0, "lnewer": true, "graves": null}"#;
        let frame = zstd::encode_all(&plain[..], 1).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&frame).unwrap(),
            None
        );
        assert!(declared(&frame, SMALL_OUTPUT).is_none());
        let (out, items) = decompress_small(&frame, &json_limits(100))
            .unwrap()
            .unwrap();
        assert_eq!(out, plain);
        assert_eq!(items, 6);
    }

    #[test]
    fn what_follows_the_first_frame_is_treated_as_before() {
        let first = zstd::bulk::compress(&b"{\"a\": 1}"[..], 1).unwrap();
        let second = zstd::bulk::compress(&b"[2]"[..], 1).unwrap();
        let empty = zstd::bulk::compress(&b""[..], 1).unwrap();
        let cut = first[..first.len() - 2].to_vec();
        for tail in [&b"garbage"[..], &second, &empty, &first, &[0u8][..]] {
            let body = [&first[..], tail].concat();
            let (out, _) = decompress_small(&body, &json_limits(100)).unwrap().unwrap();
            assert_eq!(Ok(out), streamed(&body, SMALL_OUTPUT));
        }
        // A truncated frame: refused by both, with the decoder's own error.
        assert!(declared(&cut, SMALL_OUTPUT).is_none());
        let err = decompress_small(&cut, &json_limits(100))
            .unwrap()
            .unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(streamed(&cut, SMALL_OUTPUT).is_err());
        // The kept context decodes the next body in one shot, afresh.
        let (out, _) = decompress_small(&first, &json_limits(100))
            .unwrap()
            .unwrap();
        assert_eq!(out, b"{\"a\": 1}");
    }

    #[test]
    fn decompresses_within_the_caps() {
        let compressed = zstd::encode_all(&br#"{"v":11}"#[..], 0).unwrap();
        assert_eq!(
            decompress_capped(&compressed, &limits()).unwrap(),
            br#"{"v":11}"#
        );
    }

    #[test]
    fn refuses_bodies_that_decompress_past_the_cap() {
        let compressed = zstd::encode_all(&vec![b'a'; 10_000][..], 0).unwrap();
        assert!(compressed.len() < 1024);
        let err = decompress_capped(&compressed, &limits()).unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[test]
    fn refuses_bytes_that_are_not_zstd() {
        let err = decompress_capped(b"{\"plain\": true}", &limits()).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[test]
    fn reads_the_window_from_the_frame_header() {
        // One-shot compression records the content size, which is then the window.
        let small = zstd::bulk::compress(&b"{}"[..], 3).unwrap();
        assert_eq!(frame_window(&small), Some(2 + 128 * 1024));
        // Streaming compression declares a window instead (2 MiB at level 3).
        let streamed = zstd::encode_all(&b"{}"[..], 3).unwrap();
        assert_eq!(frame_window(&streamed), Some((2 << 20) + 128 * 1024));
        let big = frame_with_window(23, b"{}");
        assert_eq!(frame_window(&big), Some((8 << 20) + 128 * 1024));
        assert_eq!(frame_window(b"not zstd"), None);
        assert_eq!(frame_window(&[]), None);
    }

    #[test]
    fn refuses_frames_that_ask_for_a_huge_window() {
        let frame = frame_with_window(27, br#"{"v":11}"#);
        let err = decompress_capped(&frame, &limits()).unwrap_err();
        assert_eq!(err.status(), 400);
    }

    #[tokio::test]
    async fn refuses_compressed_bodies_past_the_cap() {
        let err = read_bytes(Body::from(vec![0u8; 2000]), &limits())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
    }

    #[tokio::test]
    async fn decompression_stops_at_the_cap_on_either_path() {
        let plain = vec![b'a'; 10_000];
        // Tried in one piece, which hands it on to the streamed path once past the cap.
        let small = zstd::encode_all(&plain[..], 1).unwrap();
        assert!(small.len() <= SMALL_COMPRESSED && frame_window(&small) <= Some(SMALL_WINDOW));
        // A window past the small bodies' one: decoded in pieces from the start.
        let streamed = frame_with_window(23, &plain);
        assert!(frame_window(&streamed) > Some(SMALL_WINDOW));
        for compressed in [small, streamed] {
            let err = read_bytes(Body::from(compressed), &limits())
                .await
                .unwrap_err();
            assert_eq!(err.status(), 413);
        }
    }

    #[test]
    fn counts_items_outside_strings_only() {
        let mut items = JsonItems::default();
        items.feed(br#"{"a":[1,2,3],"b":"x,[{:\"]"}"#);
        // { : [ , , , : = 7; nothing inside the string, escaped quote included.
        assert_eq!(items.count, 7);
        let mut split = JsonItems::default();
        split.feed(br#"["a\"#);
        split.feed(br#""",1]"#);
        assert_eq!(split.count, 2);
    }

    #[tokio::test]
    async fn a_small_body_of_many_zeros_is_refused_before_parsing() {
        let mut text = b"[0".to_vec();
        text.extend(std::iter::repeat_n(&b",0"[..], 2_000_000).flatten());
        text.push(b']');
        let compressed = zstd::encode_all(&text[..], 19).unwrap();
        assert!(compressed.len() < 4096);
        let err = read_json::<Vec<u8>>(Body::from(compressed), json_limits(100_000))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 413);
        let small = zstd::encode_all(&b"[0,0,0]"[..], 0).unwrap();
        let parsed: Vec<u8> = read_json(Body::from(small), json_limits(100_000))
            .await
            .unwrap();
        assert_eq!(parsed, vec![0, 0, 0]);
    }

    #[tokio::test]
    async fn a_body_that_stalls_times_out() {
        let stalled = Body::from_stream(futures_util::stream::pending::<
            Result<Vec<u8>, std::io::Error>,
        >());
        let limits = BodyLimits {
            timeout: Duration::from_millis(50),
            ..limits()
        };
        let err = read_bytes(stalled, &limits).await.unwrap_err();
        assert_eq!(err.status(), 408);
    }

    #[tokio::test]
    async fn the_shared_budget_turns_excess_into_busy_and_is_given_back() {
        let budget = Arc::new(Semaphore::new(4096)); // 4 MiB in KiB units
        let limits = BodyLimits {
            budget: Some(budget.clone()),
            timeout: Duration::from_millis(200),
            max_items: Some(1_000_000),
            ..BodyLimits::sizes(8 << 20, 8 << 20)
        };
        let text = format!("\"{}\"", "a".repeat(6 << 20));
        let compressed = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
        let err = read_json::<String>(Body::from(compressed), limits.clone())
            .await
            .unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(budget.available_permits(), 4096, "nothing stays charged");
        // Within the budget: the first bytes are free, the rest is charged, then returned.
        let text = format!("\"{}\"", "a".repeat(300 << 10));
        let compressed = zstd::bulk::compress(text.as_bytes(), 3).unwrap();
        let parsed: String = read_json(Body::from(compressed), limits).await.unwrap();
        assert_eq!(parsed.len(), 300 << 10);
        assert_eq!(budget.available_permits(), 4096);
    }

    #[tokio::test]
    async fn spools_a_body_to_disk() {
        let dir = tempfile::tempdir().unwrap();
        let compressed = zstd::encode_all(&b"SQLite format 3\0"[..], 0).unwrap();
        let file = read_to_file(Body::from(compressed), limits(), dir.path())
            .await
            .unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), b"SQLite format 3\0");
        let too_big = zstd::encode_all(&vec![b'x'; 5000][..], 0).unwrap();
        assert!(matches!(
            read_to_file(Body::from(too_big), limits(), dir.path()).await,
            Err(SpoolError::TooLarge)
        ));
    }
}
