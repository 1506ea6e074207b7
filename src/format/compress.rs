//! Compression of the ordinary (non-sensitive) section of a frame: zstd, with reused contexts.
//!
//! The codec was chosen by measurement on `shared/corpus/` (see `BENCHMARKS.md`): zstd at a low
//! level is within a few percent of the smallest codecs tried and several times faster. Creating
//! a zstd context costs more than compressing a session, so each thread keeps one of each.
//!
//! Decompression is bounded, in the order `FORMAT.md` section 4.2 fixes (the order decides the
//! rejection reason): the body must be exactly one complete zstd frame that declares its content
//! size (ours always do; a skippable frame or a byte after the frame is invalid), then the
//! declared size is checked against the caller's maximum before anything is allocated, and
//! exactly that many bytes must come out (zstd itself refuses a dictionary id and verifies a
//! checksum when the frame has one).

use std::cell::RefCell;

use zstd::bulk::{Compressor, Decompressor};

/// The zstd level used when sealing.
pub(crate) const LEVEL: i32 = 3;

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
}

/// Compresses `input`, or returns `None` if zstd fails (the caller then stores it as is).
pub(crate) fn compress(input: &[u8]) -> Option<Vec<u8>> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            *slot = Some(Compressor::new(LEVEL).ok()?);
        }
        slot.as_mut()?.compress(input).ok()
    })
}

/// A compressed body is kept only when it is smaller by at least `1 / MIN_GAIN` of the body:
/// every later `open` pays zstd's table setup (about 2 µs, `BENCHMARKS.md`) for it, which a
/// few bytes saved do not repay.
pub(crate) const MIN_GAIN: usize = 16;

/// Whether a body of `body` bytes that compressed to `packed` bytes is stored compressed.
pub(crate) fn worth_keeping(body: usize, packed: usize) -> bool {
    packed < body && body - packed >= body / MIN_GAIN
}

/// Why a compressed section could not be expanded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DecompressError {
    /// It declares (or produced) more than the allowed size.
    TooLarge,
    /// It is not a single zstd frame with a declared content size.
    Invalid,
}

/// Decompresses one zstd frame whose declared content size is at most `max` bytes, into a
/// buffer with room for `extra` more bytes after it.
pub(crate) fn decompress(
    input: &[u8],
    max: usize,
    extra: usize,
) -> Result<Vec<u8>, DecompressError> {
    let declared = match zstd::zstd_safe::get_frame_content_size(input) {
        Ok(Some(size)) => size,
        _ => return Err(DecompressError::Invalid),
    };
    // Exactly one frame and nothing after it (zstd would also decode frames that follow).
    match zstd::zstd_safe::find_frame_compressed_size(input) {
        Ok(len) if len == input.len() => {}
        _ => return Err(DecompressError::Invalid),
    }
    let size = usize::try_from(declared).map_err(|_| DecompressError::TooLarge)?;
    if size > max {
        return Err(DecompressError::TooLarge);
    }
    let mut out = Vec::with_capacity(size + extra);
    let written = DECOMPRESSOR.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| DecompressError::Invalid)?;
        if slot.is_none() {
            *slot = Some(Decompressor::new().map_err(|_| DecompressError::Invalid)?);
        }
        let decompressor = slot.as_mut().ok_or(DecompressError::Invalid)?;
        decompressor.decompress_to_buffer(input, &mut out).map_err(|_| DecompressError::Invalid)
    })?;
    if written != size {
        return Err(DecompressError::Invalid);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_what_saves_a_sixteenth() {
        // (body bytes, packed bytes, kept)
        let table = [
            (160, 161, false),
            (160, 160, false),
            (160, 151, false),
            (160, 150, true),
            (4096, 3841, false),
            (4096, 3840, true),
            (4096, 1200, true),
        ];
        for (body, packed, kept) in table {
            assert_eq!(worth_keeping(body, packed), kept, "{body} -> {packed}");
        }
    }

    #[test]
    fn round_trips() {
        let input = b"hello hello hello hello hello hello hello".repeat(20);
        let packed = compress(&input).unwrap();
        assert!(packed.len() < input.len());
        assert_eq!(decompress(&packed, input.len(), 0).unwrap(), input);
    }

    #[test]
    fn refuses_to_expand_past_the_cap() {
        let input = vec![0u8; 1 << 20];
        let packed = compress(&input).unwrap();
        assert!(packed.len() < 200, "a megabyte of zeros packs small");
        assert_eq!(decompress(&packed, 64 * 1024, 0), Err(DecompressError::TooLarge));
    }

    #[test]
    fn rejects_anything_after_the_frame() {
        let input = b"hello hello hello hello hello hello hello".repeat(20);
        let mut packed = compress(&input).unwrap();
        let empty_frame = compress(b"").unwrap();
        packed.extend_from_slice(&empty_frame);
        assert_eq!(decompress(&packed, 1 << 20, 0), Err(DecompressError::Invalid));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(decompress(b"not zstd at all", 1024, 0), Err(DecompressError::Invalid));
        assert_eq!(decompress(&[], 1024, 0), Err(DecompressError::Invalid));
    }
}
