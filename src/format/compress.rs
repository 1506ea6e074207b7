//! Compression of the ordinary (non-sensitive) section of a frame: zstd, with reused contexts,
//! and for small bodies a dictionary shipped with the crate.
//!
//! The codec was chosen by measurement on `shared/corpus/` (see `BENCHMARKS.md`): zstd at a low
//! level is within a few percent of the smallest codecs tried and several times faster. Creating
//! a zstd context costs more than compressing a session, so each thread keeps one of each.
//!
//! The dictionary (`dictionary-1.zdict`, `FORMAT.md` section 4.2): on a body of a few hundred
//! bytes zstd spends most of its time building and writing entropy tables, not matching. The
//! dictionary carries tables made once, which zstd reuses for small inputs instead of building
//! new ones, and common session text the matcher can point at: on the peers' 431-byte login
//! state, sealing's compression takes 1.0 µs instead of 4.0 and the body is 211 bytes instead
//! of 232 (`cargo run --release --example dictionary`, which also trains it, on synthetic
//! states only). From [`DICTIONARY_LIMIT`] bytes up the dictionary's tables no longer fit the
//! body better than its own, and those bodies are compressed without it.
//!
//! Decompression is bounded, in the order `FORMAT.md` section 4.2 fixes (the order decides the
//! rejection reason): the body must be exactly one complete zstd frame that declares its content
//! size and names no dictionary (ours never do; a skippable frame or a byte after the frame is
//! invalid), then the declared size is checked against the caller's maximum before anything is
//! allocated, and exactly that many bytes must come out (zstd verifies a checksum when the frame
//! has one).

use std::cell::RefCell;
use std::sync::OnceLock;

use zeroize::Zeroize as _;

use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::{DecoderDictionary, EncoderDictionary};
use zstd::zstd_safe::CParameter;

/// The zstd level used when sealing without the dictionary.
pub(crate) const LEVEL: i32 = 3;

/// The zstd level used with the dictionary: level 1 finds as much as level 3 once the
/// dictionary supplies the common text, and spends less time searching it (on the corpus's
/// drawn states under 4 KB, the same sizes within 3 bytes on average; on the peers' login
/// state 1.04 µs instead of 1.19, `examples/dictionary.rs`).
pub(crate) const DICTIONARY_LEVEL: i32 = 1;

/// Dictionary 1 (`FORMAT.md` section 4.2 gives its SHA-256): frames with flag bit 2 were
/// compressed with it. Trained by `examples/dictionary.rs`; never changed once released (a new
/// dictionary takes a new flag), since every token sealed with it must keep opening.
pub(crate) const DICTIONARY: &[u8] = include_bytes!("dictionary-1.zdict");

/// Bodies of at least this many bytes are compressed without the dictionary: over the corpus's
/// drawn states (`examples/dictionary.rs`), every body from 4096 bytes up came out larger with
/// it, and every one from 1536 to 4095 bytes smaller.
pub(crate) const DICTIONARY_LIMIT: usize = 4096;

/// A compressed body is kept only when it is smaller by at least `1 / MIN_GAIN` of the body:
/// every later `open` pays zstd's table setup for it, which a few bytes saved do not repay.
pub(crate) const MIN_GAIN: usize = 16;

/// How bodies are compressed when sealing (from the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    /// Bodies shorter than this are stored as they are; `None` never compresses.
    pub(crate) threshold: Option<usize>,
    /// Whether bodies shorter than [`DICTIONARY_LIMIT`] use the dictionary.
    pub(crate) dictionary: bool,
}

/// How a stored body was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Packing {
    /// A plain zstd frame.
    Plain,
    /// A zstd frame compressed with [`DICTIONARY`].
    Dictionary,
}

fn encoder_dictionary() -> &'static EncoderDictionary<'static> {
    static PREPARED: OnceLock<EncoderDictionary<'static>> = OnceLock::new();
    PREPARED.get_or_init(|| EncoderDictionary::copy(DICTIONARY, DICTIONARY_LEVEL))
}

fn decoder_dictionary() -> &'static DecoderDictionary<'static> {
    static PREPARED: OnceLock<DecoderDictionary<'static>> = OnceLock::new();
    PREPARED.get_or_init(|| DecoderDictionary::copy(DICTIONARY))
}

thread_local! {
    static COMPRESSOR: RefCell<Option<Compressor<'static>>> = const { RefCell::new(None) };
    static DICTIONARY_COMPRESSOR: RefCell<Option<Compressor<'static>>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> = const { RefCell::new(None) };
    static DICTIONARY_DECOMPRESSOR: RefCell<Option<Decompressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compresses `body` under `policy`, or returns `None` when it is stored as it is: below the
/// threshold, when compression does not save enough ([`worth_keeping`]), or if zstd fails.
pub(crate) fn pack(body: &[u8], policy: Policy) -> Option<(Vec<u8>, Packing)> {
    let threshold = policy.threshold?;
    if body.len() < threshold {
        return None;
    }
    let packing = if policy.dictionary && body.len() < DICTIONARY_LIMIT {
        Packing::Dictionary
    } else {
        Packing::Plain
    };
    let packed = compress(body, packing)?;
    worth_keeping(body.len(), packed.len()).then_some((packed, packing))
}

/// Compresses `input` one way, or returns `None` if zstd fails.
pub(crate) fn compress(input: &[u8], packing: Packing) -> Option<Vec<u8>> {
    let slot = match packing {
        Packing::Plain => &COMPRESSOR,
        Packing::Dictionary => &DICTIONARY_COMPRESSOR,
    };
    slot.with(|cell| {
        let mut slot = cell.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut compressor = match packing {
                Packing::Plain => Compressor::new(LEVEL).ok()?,
                Packing::Dictionary => {
                    Compressor::with_prepared_dictionary(encoder_dictionary()).ok()?
                }
            };
            // The flag bit names the dictionary; the frame does not repeat its id (4 bytes).
            compressor.set_parameter(CParameter::DictIdFlag(false)).ok()?;
            *slot = Some(compressor);
        }
        slot.as_mut()?.compress(input).ok()
    })
}

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

/// Decompresses one zstd frame, compressed as `packing` says, whose declared content size is at
/// most `max` bytes, into a buffer with room for `extra` more bytes after it.
pub(crate) fn decompress(
    input: &[u8],
    packing: Packing,
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
    // Which dictionary a frame needs is the flag bit's to say, never the frame's.
    if zstd::zstd_safe::get_dict_id_from_frame(input).is_some() {
        return Err(DecompressError::Invalid);
    }
    let mut out = Vec::with_capacity(size + extra);
    let slot = match packing {
        Packing::Plain => &DECOMPRESSOR,
        Packing::Dictionary => &DICTIONARY_DECOMPRESSOR,
    };
    let written = slot.with(|cell| {
        let mut slot = cell.try_borrow_mut().map_err(|_| DecompressError::Invalid)?;
        if slot.is_none() {
            let decompressor = match packing {
                Packing::Plain => Decompressor::new(),
                Packing::Dictionary => Decompressor::with_prepared_dictionary(decoder_dictionary()),
            };
            *slot = Some(decompressor.map_err(|_| DecompressError::Invalid)?);
        }
        let decompressor = slot.as_mut().ok_or(DecompressError::Invalid)?;
        decompressor.decompress_to_buffer(input, &mut out).map_err(|_| DecompressError::Invalid)
    });
    match written {
        Ok(written) if written == size => Ok(out),
        // zstd may have written plaintext into the buffer before it failed (a corrupt later
        // block, a checksum mismatch), past the length the Vec knows of: wipe the whole
        // capacity before it is freed. Only failures pay for it.
        _ => {
            wipe(&mut out);
            Err(DecompressError::Invalid)
        }
    }
}

/// Zeroes `buffer`'s bytes and its spare capacity, as `Vec::zeroize` does.
fn wipe(buffer: &mut Vec<u8>) {
    buffer.zeroize();
    #[cfg(test)]
    tests::WIPED.with(|wiped| wiped.set(wiped.get() + buffer.capacity()));
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// The bytes of capacity [`wipe`] zeroed on this thread.
        pub(super) static WIPED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    #[test]
    fn a_failed_decompression_wipes_its_buffer() {
        // (what, how the frame is broken): each decodes some or all of the body into the
        // buffer before zstd reports the failure.
        let input: Vec<u8> = (0..3000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut compressor = Compressor::new(LEVEL).unwrap();
        compressor.set_parameter(CParameter::ChecksumFlag(true)).unwrap();
        let packed = compressor.compress(&input).unwrap();
        let mut checksum = packed.clone();
        *checksum.last_mut().unwrap() ^= 1;
        let cases = [("checksum mismatch", checksum)];
        for (what, frame) in cases {
            WIPED.with(|wiped| wiped.set(0));
            let out = decompress(&frame, Packing::Plain, input.len(), 0);
            assert_eq!(out, Err(DecompressError::Invalid), "{what}");
            let wiped = WIPED.with(std::cell::Cell::get);
            assert!(wiped >= input.len(), "{what}: {wiped} bytes wiped");
        }
        // The frame unbroken opens, and nothing is wiped.
        WIPED.with(|wiped| wiped.set(0));
        assert_eq!(decompress(&packed, Packing::Plain, input.len(), 0).unwrap(), input);
        assert_eq!(WIPED.with(std::cell::Cell::get), 0);
    }

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
        let packed = compress(&input, Packing::Plain).unwrap();
        assert!(packed.len() < input.len());
        assert_eq!(decompress(&packed, Packing::Plain, input.len(), 0).unwrap(), input);
    }

    #[test]
    fn refuses_to_expand_past_the_cap() {
        let input = vec![0u8; 1 << 20];
        let packed = compress(&input, Packing::Plain).unwrap();
        assert!(packed.len() < 200, "a megabyte of zeros packs small");
        assert_eq!(
            decompress(&packed, Packing::Plain, 64 * 1024, 0),
            Err(DecompressError::TooLarge)
        );
    }

    #[test]
    fn rejects_anything_after_the_frame() {
        let input = b"hello hello hello hello hello hello hello".repeat(20);
        let mut packed = compress(&input, Packing::Plain).unwrap();
        let empty_frame = compress(b"", Packing::Plain).unwrap();
        packed.extend_from_slice(&empty_frame);
        assert_eq!(decompress(&packed, Packing::Plain, 1 << 20, 0), Err(DecompressError::Invalid));
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(
            decompress(b"not zstd at all", Packing::Plain, 1024, 0),
            Err(DecompressError::Invalid)
        );
        assert_eq!(decompress(&[], Packing::Plain, 1024, 0), Err(DecompressError::Invalid));
    }

    /// A small session-like body: MessagePack of a user and a short cart.
    fn small_body() -> Vec<u8> {
        let mut body = vec![0x82, 0xa4];
        body.extend_from_slice(b"user");
        body.extend_from_slice(&[0xa5]);
        body.extend_from_slice(b"bench");
        body.extend_from_slice(&[0xa4]);
        body.extend_from_slice(b"cart");
        body.push(0x9a);
        for i in 0..10u8 {
            body.extend_from_slice(&[0x82, 0xa3]);
            body.extend_from_slice(b"sku");
            body.extend_from_slice(&[0xcd, 0x10, i]);
            body.extend_from_slice(&[0xa4]);
            body.extend_from_slice(b"name");
            body.extend_from_slice(&[0xa9]);
            body.extend_from_slice(format!("Product {i}").as_bytes());
        }
        body
    }

    #[test]
    fn the_dictionary_opens_only_its_own_frames() {
        let body = small_body();
        let plain = compress(&body, Packing::Plain).unwrap();
        let with = compress(&body, Packing::Dictionary).unwrap();
        assert!(with.len() < plain.len(), "dictionary {} vs plain {}", with.len(), plain.len());
        // (frame, opened as, opens)
        let table = [
            (&plain, Packing::Plain, true),
            (&with, Packing::Dictionary, true),
            (&with, Packing::Plain, false),
            (&plain, Packing::Dictionary, true),
        ];
        for (frame, packing, opens) in table {
            let out = decompress(frame, packing, body.len(), 0);
            assert_eq!(out.as_deref().ok() == Some(&body[..]), opens, "{packing:?}");
        }
    }

    #[test]
    fn frames_name_no_dictionary() {
        let body = small_body();
        let with = compress(&body, Packing::Dictionary).unwrap();
        assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&with), None);
        // The same frame with the dictionary's id in its header (as zstd writes by default).
        let mut named = zstd::bulk::Compressor::with_dictionary(LEVEL, DICTIONARY).unwrap();
        let named = named.compress(&body).unwrap();
        assert!(zstd::zstd_safe::get_dict_id_from_frame(&named).is_some());
        let out = decompress(&named, Packing::Dictionary, body.len(), 0);
        assert_eq!(out, Err(DecompressError::Invalid));
    }

    #[test]
    fn policy_picks_the_packing() {
        let small = small_body();
        let large = small.repeat(DICTIONARY_LIMIT / small.len() + 1);
        let on = Policy { threshold: Some(64), dictionary: true };
        let off = Policy { dictionary: false, ..on };
        let never = Policy { threshold: None, ..on };
        let high = Policy { threshold: Some(small.len() + 1), ..on };
        // (body, policy, packing)
        let table = [
            (&small, on, Some(Packing::Dictionary)),
            (&small, off, Some(Packing::Plain)),
            (&large, on, Some(Packing::Plain)),
            (&small, never, None),
            (&small, high, None),
        ];
        for (body, policy, packing) in table {
            assert_eq!(pack(body, policy).map(|(_, p)| p), packing, "{policy:?}, {}", body.len());
        }
    }

    #[test]
    fn the_dictionary_is_the_one_format_md_names() {
        use sha2::{Digest as _, Sha256};
        // Retraining must not replace the file: tokens sealed with it must keep opening.
        let digest: String =
            Sha256::digest(DICTIONARY).iter().map(|byte| format!("{byte:02x}")).collect();
        assert_eq!(digest, "e2c80bd498c552f17dfdc1fba1bdae2e6347801e4110eb0fbb33cf0b2f4732d4");
    }
}
