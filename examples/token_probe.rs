//! Measures a value-aware token encoding for the body of a frame (issue 27), a format change
//! not made: before compression, every string value that is a token written as text
//! (base64url, base64, hex, a UUID, or base64url segments joined by dots as in a JWT) becomes
//! its decoded bytes under a MessagePack ext tag naming the alphabet, so that the bytes carry 8
//! bits each instead of the ~6.2 that zstd's Huffman coding gets out of base64 text. Then:
//!
//! - **A** compresses the whole rewritten body as sealing does today;
//! - **B** compresses only the structure and appends the random token bytes after it,
//!   uncompressed (decoded bytes that are printable ASCII, a JWT's JSON header and claims, stay
//!   in the structure, where they compress);
//! - **C** stores the rewritten body uncompressed when what is left of it besides the random
//!   token bytes is shorter than the compression threshold (so B would not compress it either),
//!   and otherwise does as A.
//!
//! A token is only rewritten when decoding it and encoding the bytes again gives back exactly
//! the same string, and the probe asserts that the inverse rewrite restores the original
//! MessagePack byte for byte. Compression follows the library's rule (`src/format/compress.rs`
//! and the default configuration), applied to A's body and to B's structure.
//!
//! ```text
//! cargo run --release --example token_probe                     # sizes (and round trips)
//! scripts/token-probe.sh                                        # sizes, instructions, ratios
//! valgrind --tool=callgrind --toggle-collect='*token_probe::counted*' \
//!     target/release/examples/token_probe count MODE FILE CALLS
//! ```
//!
//! `MODE` is one of `seal` and `open` (the library's, whole), `compress` and `decompress`
//! (today's body), `seal-a`, `seal-b`, `seal-c` (rewrite and compress) and `open-a`, `open-b`,
//! `open-c` (decompress and restore the MessagePack). `report` reads `FILE MODE INSTRUCTIONS`
//! lines on standard input and prints the tables with the estimated ratios.

#[path = "../benches/common/mod.rs"]
#[allow(unused)]
mod common;

use std::collections::BTreeMap;
use std::io::BufRead as _;

use base64::Engine as _;
use base64::engine::Config as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use zstd::bulk::{Compressor, Decompressor};
use zstd::dict::EncoderDictionary;
use zstd::zstd_safe::CParameter;

const DICTIONARY: &[u8] = include_bytes!("../src/format/dictionary-1.zdict");

// The library's compression rule, copied (it is crate-private): `DEFAULT_COMPRESSION_THRESHOLD`
// of src/config/mod.rs, then `LEVEL`, `DICTIONARY_LEVEL`, `DICTIONARY_LIMIT` and `MIN_GAIN` of
// src/format/compress.rs.
const THRESHOLD: usize = 384;
const LEVEL: i32 = 3;
const DICTIONARY_LEVEL: i32 = 1;
const DICTIONARY_LIMIT: usize = 4096;
const MIN_GAIN: usize = 16;

/// Shorter strings are left as text: a few bytes saved do not pay for a tag.
const MIN_TOKEN: usize = 16;

/// A body is rewritten only when its tokens' characters are at least `1 / TOKEN_SHARE` of it
/// (see `Sealer::token_heavy`).
const TOKEN_SHARE: usize = 4;

/// Set in a single-piece token's ext type when its bytes are in the tail.
const TAIL: u8 = 0x40;

/// The ext type of a rewritten token: which text its bytes are written back as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
enum Kind {
    Base64UrlNoPad = 1,
    Base64UrlPad = 2,
    Base64NoPad = 3,
    Base64Pad = 4,
    HexLower = 5,
    HexUpper = 6,
    UuidLower = 7,
    UuidUpper = 8,
    /// Base64url segments without padding joined by dots (a JWS or JWE compact serialization).
    Dotted = 9,
}

impl Kind {
    fn of(tag: i8) -> Kind {
        [
            Kind::Base64UrlNoPad,
            Kind::Base64UrlPad,
            Kind::Base64NoPad,
            Kind::Base64Pad,
            Kind::HexLower,
            Kind::HexUpper,
            Kind::UuidLower,
            Kind::UuidUpper,
            Kind::Dotted,
        ][tag as usize - 1]
    }

    fn engine(self) -> &'static GeneralPurpose {
        match self {
            Kind::Base64UrlPad => &URL_SAFE,
            Kind::Base64NoPad => &STANDARD_NO_PAD,
            Kind::Base64Pad => &STANDARD,
            _ => &URL_SAFE_NO_PAD,
        }
    }
}

// Character classes, one bit each, so that one pass over a string tells which alphabets hold
// all of it (AND of the classes) and whether it mixes cases (OR).
const HEX_LOWER: u8 = 1;
const HEX_UPPER: u8 = 2;
const URL: u8 = 4;
const STD: u8 = 8;
const UPPER: u8 = 16;
const LOWER: u8 = 32;
const DOT: u8 = 64;

const CLASSES: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = match b {
            b'0'..=b'9' => HEX_LOWER | HEX_UPPER | URL | STD,
            b'a'..=b'f' => HEX_LOWER | URL | STD | LOWER,
            b'g'..=b'z' => URL | STD | LOWER,
            b'A'..=b'F' => HEX_UPPER | URL | STD | UPPER,
            b'G'..=b'Z' => URL | STD | UPPER,
            b'-' | b'_' => URL,
            b'+' | b'/' => STD,
            b'.' => DOT,
            _ => 0,
        };
        c += 1;
    }
    table
};

fn classes(text: &[u8]) -> (u8, u8) {
    text.iter()
        .fold((0xff, 0), |(all, any), &c| (all & CLASSES[c as usize], any | CLASSES[c as usize]))
}

/// The value of a hex digit, or 0xff.
const HEX: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        table[c] = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => 0xff,
        };
        c += 1;
    }
    table
};

/// Appends the bytes of hex `digits` (an even number, all valid) to `bytes`.
fn hex_decode(digits: &[u8], bytes: &mut Vec<u8>) {
    bytes.extend(
        digits
            .chunks_exact(2)
            .map(|pair| HEX[usize::from(pair[0])] << 4 | HEX[usize::from(pair[1])]),
    );
}

/// What the rewrite found, for the table and for C's decision.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    tokens: usize,
    chars: usize,
    /// Decoded bytes that are not printable ASCII: random, so not worth compressing.
    random: usize,
}

/// Decodes `text` as one token into `bytes` (appended; `lens` gets each piece's length), or
/// returns `None` if it is not one that encodes back to exactly `text`.
fn tokenize(
    text: &[u8],
    bytes: &mut Vec<u8>,
    lens: &mut Vec<usize>,
    check: &mut Vec<u8>,
) -> Option<Kind> {
    if text.len() < MIN_TOKEN {
        return None;
    }
    let (all, any) = classes(text);
    if text.len() == 36 && [8, 13, 18, 23].iter().all(|&i| text[i] == b'-') {
        let groups = [&text[..8], &text[9..13], &text[14..18], &text[19..23], &text[24..]];
        if groups.iter().any(|group| group.iter().any(|&c| HEX[usize::from(c)] == 0xff))
            || any & UPPER != 0 && any & LOWER != 0
        {
            return None;
        }
        groups.iter().for_each(|group| hex_decode(group, bytes));
        lens.push(16);
        return Some(if any & UPPER != 0 { Kind::UuidUpper } else { Kind::UuidLower });
    }
    if text.len() % 2 == 0 && all & (HEX_LOWER | HEX_UPPER) != 0 {
        let kind = if all & HEX_LOWER != 0 { Kind::HexLower } else { Kind::HexUpper };
        hex_decode(text, bytes);
        lens.push(text.len() / 2);
        return Some(kind);
    }
    // Base64 of random bytes mixes cases; a lower-case slug or word that happens to decode
    // does not, and is better left to the compressor as text.
    if any & UPPER == 0 || any & LOWER == 0 {
        return None;
    }
    let unpadded = text.iter().rposition(|&c| c != b'=').map_or(0, |last| last + 1);
    let (body_all, _) = classes(&text[..unpadded]);
    let padded = unpadded < text.len();
    let kind = if body_all & URL != 0 {
        if padded { Kind::Base64UrlPad } else { Kind::Base64UrlNoPad }
    } else if body_all & STD != 0 {
        if padded { Kind::Base64Pad } else { Kind::Base64NoPad }
    } else if any & DOT != 0 && !padded {
        let start = bytes.len();
        for segment in text.split(|&c| c == b'.') {
            let before = bytes.len();
            URL_SAFE_NO_PAD.decode_vec(segment, bytes).ok()?;
            lens.push(bytes.len() - before);
        }
        // Three segments for a JWS, five for a JWE, two for a prefixed token such as Google's
        // `ya29.…`; `Rewriter::value` has room for five.
        if !(2..=5).contains(&lens.len()) {
            return None;
        }
        check.clear();
        let mut at = start;
        for (i, &len) in lens.iter().enumerate() {
            if i > 0 {
                check.push(b'.');
            }
            encode_into(&URL_SAFE_NO_PAD, &bytes[at..at + len], check);
            at += len;
        }
        return (check.as_slice() == text).then_some(Kind::Dotted);
    } else {
        return None;
    };
    let before = bytes.len();
    kind.engine().decode_vec(text, bytes).ok()?;
    lens.push(bytes.len() - before);
    // The engines reject non-zero trailing bits and non-canonical padding, so this holds
    // whenever decoding succeeded; the rule is "encodes back exactly", so check it anyway.
    check.clear();
    encode_into(kind.engine(), &bytes[before..], check);
    (check.as_slice() == text).then_some(kind)
}

fn encode_into(engine: &GeneralPurpose, input: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let len = base64::encoded_len(input.len(), engine.config().encode_padding()).expect("fits");
    out.resize(start + len, 0);
    engine.encode_slice(input, &mut out[start..]).expect("sized");
}

fn read_varint(input: &[u8], pos: &mut usize) -> usize {
    let (mut n, mut shift) = (0, 0);
    loop {
        let b = input[*pos];
        *pos += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b < 0x80 {
            return n;
        }
        shift += 7;
    }
}

fn be(input: &[u8], at: usize, width: usize) -> usize {
    input[at..at + width].iter().fold(0, |n, &b| n << 8 | usize::from(b))
}

/// The rewrite's buffers, kept between calls as the library keeps its own.
#[derive(Default)]
struct Rewriter {
    bytes: Vec<u8>,
    lens: Vec<usize>,
    check: Vec<u8>,
    counts: Counts,
    /// How far into the body `out` has been written: bytes are copied a run at a time, up to
    /// each token.
    flushed: usize,
}

impl Rewriter {
    /// Rewrites the MessagePack `body` into `out`. With `split`, random token bytes go to
    /// `tail` instead of into the ext values (B); otherwise `tail` stays empty (A, C).
    fn rewrite(
        &mut self,
        body: &[u8],
        split: bool,
        out: &mut Vec<u8>,
        tail: &mut Vec<u8>,
    ) -> Counts {
        out.clear();
        tail.clear();
        self.counts = Counts::default();
        self.flushed = 0;
        let mut pos = 0;
        while pos < body.len() {
            self.value(body, &mut pos, false, split, out, tail);
        }
        out.extend_from_slice(&body[self.flushed..]);
        self.counts
    }

    fn value(
        &mut self,
        input: &[u8],
        pos: &mut usize,
        key: bool,
        split: bool,
        out: &mut Vec<u8>,
        tail: &mut Vec<u8>,
    ) {
        let marker = input[*pos];
        let (header, len) = match marker {
            0xa0..=0xbf => (1, usize::from(marker & 0x1f)),
            0xd9 => (2, be(input, *pos + 1, 1)),
            0xda => (3, be(input, *pos + 1, 2)),
            0xdb => (5, be(input, *pos + 1, 4)),
            _ => {
                let items = container(input, *pos);
                *pos += items.header;
                for i in 0..items.count {
                    let is_key = items.map && i % 2 == 0;
                    self.value(input, pos, is_key, split, out, tail);
                }
                return;
            }
        };
        let start = *pos;
        let text = &input[start + header..start + header + len];
        *pos += header + len;
        if key || len < MIN_TOKEN {
            return;
        }
        self.bytes.clear();
        self.lens.clear();
        let Some(kind) = tokenize(text, &mut self.bytes, &mut self.lens, &mut self.check) else {
            return;
        };
        out.extend_from_slice(&input[self.flushed..start]);
        self.flushed = *pos;
        self.counts.tokens += 1;
        self.counts.chars += len;
        // The ext payload of a dotted token: the piece count, then per piece its length and
        // whether its bytes are in the tail, then the bytes kept inline.
        let mut head = [0u8; 64];
        let mut head_len = 0;
        let mut inline = 0;
        if kind == Kind::Dotted {
            head[0] = self.lens.len() as u8;
            head_len = 1;
        }
        let mut tails = [false; 16];
        let mut at = 0;
        for (i, &piece) in self.lens.iter().enumerate() {
            let bytes = &self.bytes[at..at + piece];
            at += piece;
            let random = !bytes.iter().all(|b| (0x20..0x7f).contains(b));
            if random {
                self.counts.random += piece;
            }
            tails[i] = split && random;
            if !tails[i] {
                inline += piece;
            }
            let mut n = piece << 1 | usize::from(tails[i]);
            while n >= 0x80 {
                head[head_len] = n as u8 | 0x80;
                head_len += 1;
                n >>= 7;
            }
            head[head_len] = n as u8;
            head_len += 1;
        }
        let mut tag = kind as u8;
        if kind != Kind::Dotted {
            // One piece needs no header inline, where the ext's length is the piece's; in the
            // tail, its length, and a type bit saying so.
            head_len = 0;
            if tails[0] {
                tag |= TAIL;
                let mut n = self.lens[0];
                while n >= 0x80 {
                    head[head_len] = n as u8 | 0x80;
                    head_len += 1;
                    n >>= 7;
                }
                head[head_len] = n as u8;
                head_len += 1;
            }
        }
        let payload = head_len + inline;
        match payload {
            1 => out.push(0xd4),
            2 => out.push(0xd5),
            4 => out.push(0xd6),
            8 => out.push(0xd7),
            16 => out.push(0xd8),
            0..=255 => out.extend_from_slice(&[0xc7, payload as u8]),
            _ => {
                out.push(0xc8);
                out.extend_from_slice(&(payload as u16).to_be_bytes());
            }
        }
        out.push(tag);
        out.extend_from_slice(&head[..head_len]);
        let mut at = 0;
        for (i, &piece) in self.lens.iter().enumerate() {
            let bytes = &self.bytes[at..at + piece];
            at += piece;
            if tails[i] { &mut *tail } else { &mut *out }.extend_from_slice(bytes);
        }
    }
}

struct Container {
    header: usize,
    count: usize,
    map: bool,
}

/// The length of the scalar or container header at `pos`; for a container, how many values
/// follow (keys and values counted apart for a map).
fn container(input: &[u8], pos: usize) -> Container {
    let marker = input[pos];
    let scalar = |len: usize| Container { header: len, count: 0, map: false };
    match marker {
        0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => scalar(1),
        0xcc | 0xd0 => scalar(2),
        0xcd | 0xd1 => scalar(3),
        0xce | 0xd2 | 0xca => scalar(5),
        0xcf | 0xd3 | 0xcb => scalar(9),
        0x90..=0x9f => Container { header: 1, count: usize::from(marker & 0x0f), map: false },
        0xdc => Container { header: 3, count: be(input, pos + 1, 2), map: false },
        0xdd => Container { header: 5, count: be(input, pos + 1, 4), map: false },
        0x80..=0x8f => Container { header: 1, count: 2 * usize::from(marker & 0x0f), map: true },
        0xde => Container { header: 3, count: 2 * be(input, pos + 1, 2), map: true },
        0xdf => Container { header: 5, count: 2 * be(input, pos + 1, 4), map: true },
        // A JSON value has no bin or ext, which is what frees ext for the tags.
        _ => panic!("marker {marker:#x} is not made from JSON"),
    }
}

/// Restores the original MessagePack from a rewritten body and its tail into `out`.
fn restore(input: &[u8], tail: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut restorer = Restorer { input, tail, taken: 0, flushed: 0, out };
    let mut pos = 0;
    while pos < input.len() {
        restorer.value(&mut pos);
    }
    restorer.out.extend_from_slice(&input[restorer.flushed..]);
    assert_eq!(restorer.taken, tail.len(), "every tail byte belongs to a token");
}

/// The inverse rewrite's state: as `Rewriter`, it copies a run at a time, up to each token.
struct Restorer<'a> {
    input: &'a [u8],
    tail: &'a [u8],
    taken: usize,
    flushed: usize,
    out: &'a mut Vec<u8>,
}

impl Restorer<'_> {
    fn value(&mut self, pos: &mut usize) {
        let input = self.input;
        let marker = input[*pos];
        let (header, payload) = match marker {
            0xd4..=0xd8 => (2, 1 << (marker - 0xd4)),
            0xc7 => (3, be(input, *pos + 1, 1)),
            0xc8 => (4, be(input, *pos + 1, 2)),
            0xa0..=0xbf => {
                *pos += 1 + usize::from(marker & 0x1f);
                return;
            }
            0xd9..=0xdb => {
                let width = 1 << (marker - 0xd9);
                *pos += 1 + width + be(input, *pos + 1, width);
                return;
            }
            _ => {
                let items = container(input, *pos);
                *pos += items.header;
                for _ in 0..items.count {
                    self.value(pos);
                }
                return;
            }
        };
        self.out.extend_from_slice(&input[self.flushed..*pos]);
        let out = &mut *self.out;
        let tag = input[*pos + header - 1];
        let kind = Kind::of((tag & !TAIL) as i8);
        let end = *pos + header + payload;
        let mut at = *pos + header;
        *pos = end;
        self.flushed = end;
        let mut lens = [(0usize, false); 16];
        let pieces = if kind == Kind::Dotted {
            at += 1;
            let pieces = usize::from(input[at - 1]);
            for piece in lens.iter_mut().take(pieces) {
                let n = read_varint(input, &mut at);
                *piece = (n >> 1, n & 1 == 1);
            }
            pieces
        } else if tag & TAIL != 0 {
            lens[0] = (read_varint(input, &mut at), true);
            1
        } else {
            lens[0] = (payload, false);
            1
        };
        let text_len = match kind {
            Kind::UuidLower | Kind::UuidUpper => 36,
            Kind::HexLower | Kind::HexUpper => 2 * lens[0].0,
            Kind::Dotted => {
                let chars: usize = lens[..pieces]
                    .iter()
                    .map(|&(len, _)| base64::encoded_len(len, false).expect("fits"))
                    .sum();
                chars + pieces - 1
            }
            _ => base64::encoded_len(lens[0].0, kind.engine().config().encode_padding())
                .expect("fits"),
        };
        match text_len {
            0..=31 => out.push(0xa0 | text_len as u8),
            32..=255 => out.extend_from_slice(&[0xd9, text_len as u8]),
            _ => {
                out.push(0xda);
                out.extend_from_slice(&(text_len as u16).to_be_bytes());
            }
        }
        for (i, &(len, in_tail)) in lens[..pieces].iter().enumerate() {
            let bytes = if in_tail {
                self.taken += len;
                &self.tail[self.taken - len..self.taken]
            } else {
                at += len;
                &input[at - len..at]
            };
            if i > 0 {
                out.push(b'.');
            }
            match kind {
                Kind::HexLower | Kind::HexUpper | Kind::UuidLower | Kind::UuidUpper => {
                    let digits: &[u8; 16] = if matches!(kind, Kind::HexLower | Kind::UuidLower) {
                        b"0123456789abcdef"
                    } else {
                        b"0123456789ABCDEF"
                    };
                    for (j, &b) in bytes.iter().enumerate() {
                        if matches!(kind, Kind::UuidLower | Kind::UuidUpper)
                            && [4, 6, 8, 10].contains(&j)
                        {
                            out.push(b'-');
                        }
                        out.extend_from_slice(&[
                            digits[usize::from(b >> 4)],
                            digits[usize::from(b & 15)],
                        ]);
                    }
                }
                _ => encode_into(kind.engine(), bytes, out),
            }
        }
        assert_eq!(at, end, "the ext payload is used up");
    }
}

/// The library's compression, with contexts made once.
struct Packer {
    dictionary: Compressor<'static>,
    plain: Compressor<'static>,
    dictionary_out: Decompressor<'static>,
    plain_out: Decompressor<'static>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Packing {
    Stored,
    Plain,
    Dictionary,
}

impl Packer {
    fn new() -> Packer {
        let prepared = Box::leak(Box::new(EncoderDictionary::copy(DICTIONARY, DICTIONARY_LEVEL)));
        let mut dictionary = Compressor::with_prepared_dictionary(prepared).expect("a context");
        dictionary.set_parameter(CParameter::DictIdFlag(false)).expect("a parameter");
        let mut plain = Compressor::new(LEVEL).expect("a context");
        plain.set_parameter(CParameter::DictIdFlag(false)).expect("a parameter");
        Packer {
            dictionary,
            plain,
            dictionary_out: Decompressor::with_dictionary(DICTIONARY).expect("a context"),
            plain_out: Decompressor::new().expect("a context"),
        }
    }

    /// `src/format/compress.rs`'s `pack` with the default policy: the packed bytes, or `None`
    /// when the body is stored as it is.
    fn pack(&mut self, body: &[u8]) -> Option<(Vec<u8>, Packing)> {
        if body.len() < THRESHOLD {
            return None;
        }
        let (compressor, packing) = if body.len() < DICTIONARY_LIMIT {
            (&mut self.dictionary, Packing::Dictionary)
        } else {
            (&mut self.plain, Packing::Plain)
        };
        let packed = compressor.compress(body).expect("zstd compresses");
        (packed.len() < body.len() && body.len() - packed.len() >= body.len() / MIN_GAIN)
            .then_some((packed, packing))
    }

    fn unpack(&mut self, stored: &[u8], packing: Packing, out: &mut Vec<u8>) {
        out.clear();
        let decompressor = match packing {
            Packing::Stored => return out.extend_from_slice(stored),
            Packing::Plain => &mut self.plain_out,
            Packing::Dictionary => &mut self.dictionary_out,
        };
        let size =
            zstd::zstd_safe::get_frame_content_size(stored).expect("a frame").expect("a size");
        out.reserve(size as usize);
        decompressor.decompress_to_buffer(stored, out).expect("zstd decompresses");
    }
}

/// A sealed body as one option stores it: `bytes` (compressed as `packing` says) then `tail`.
#[derive(Debug, Clone)]
struct Stored {
    bytes: Vec<u8>,
    packing: Packing,
    tail: Vec<u8>,
    /// Whether the tokens were rewritten (a frame flag would say so).
    rewritten: bool,
}

impl Stored {
    fn of(body: &[u8], packed: Option<(Vec<u8>, Packing)>, tail: &[u8]) -> Stored {
        let (bytes, packing) = packed.unwrap_or_else(|| (body.to_vec(), Packing::Stored));
        Stored { bytes, packing, tail: tail.to_vec(), rewritten: true }
    }

    /// Bytes in the frame. The tail needs no length before it: the part before it ends where
    /// its zstd frame does, or, stored, where its MessagePack does.
    fn len(&self) -> usize {
        self.bytes.len() + self.tail.len()
    }
}

/// The seal-side transforms, each from a state's MessagePack to what the frame stores.
struct Sealer {
    packer: Packer,
    rewriter: Rewriter,
    rewritten: Vec<u8>,
    tail: Vec<u8>,
}

impl Sealer {
    fn new() -> Sealer {
        Sealer {
            packer: Packer::new(),
            rewriter: Rewriter::default(),
            rewritten: Vec::new(),
            tail: Vec::new(),
        }
    }

    fn today(&mut self, body: &[u8]) -> Stored {
        let packed = self.packer.pack(body);
        Stored { rewritten: false, ..Stored::of(body, packed, &[]) }
    }

    /// Whether a rewrite that found `counts` in `body` is kept. A lone token in a body of
    /// text costs bytes: its random bytes widen the Huffman table of all the literals, and
    /// its tag is longer than a string header, while zstd codes base64 text at little more
    /// than its 6 bits a character. So only token-heavy bodies are rewritten.
    fn token_heavy(counts: Counts, body: &[u8]) -> bool {
        counts.chars * TOKEN_SHARE >= body.len()
    }

    fn a(&mut self, body: &[u8]) -> Stored {
        let counts = self.rewriter.rewrite(body, false, &mut self.rewritten, &mut self.tail);
        if !Self::token_heavy(counts, body) {
            return self.today(body);
        }
        let packed = self.packer.pack(&self.rewritten);
        Stored::of(&self.rewritten, packed, &[])
    }

    fn b(&mut self, body: &[u8]) -> Stored {
        let counts = self.rewriter.rewrite(body, true, &mut self.rewritten, &mut self.tail);
        if !Self::token_heavy(counts, body) {
            return self.today(body);
        }
        let packed = self.packer.pack(&self.rewritten);
        Stored::of(&self.rewritten, packed, &self.tail)
    }

    fn c(&mut self, body: &[u8]) -> Stored {
        let counts = self.rewriter.rewrite(body, false, &mut self.rewritten, &mut self.tail);
        if !Self::token_heavy(counts, body) {
            return self.today(body);
        }
        // The decision needs nothing but what the rewrite counted. (A share of random bytes,
        // such as a half, stores `gen_api_keys.json` larger than today: its 1.1 KB of keys and
        // names compress well beside 1.4 KB of random bytes.)
        let packed = if self.rewritten.len() - counts.random < THRESHOLD {
            None
        } else {
            self.packer.pack(&self.rewritten)
        };
        Stored::of(&self.rewritten, packed, &[])
    }
}

/// The open-side inverses: what the frame stores back to the state's MessagePack in `out`.
struct Opener {
    packer: Packer,
    unpacked: Vec<u8>,
}

impl Opener {
    fn today(&mut self, stored: &Stored, out: &mut Vec<u8>) {
        self.packer.unpack(&stored.bytes, stored.packing, out);
    }

    fn rewritten(&mut self, stored: &Stored, out: &mut Vec<u8>) {
        if !stored.rewritten {
            return self.today(stored, out);
        }
        self.packer.unpack(&stored.bytes, stored.packing, &mut self.unpacked);
        restore(&self.unpacked, &stored.tail, out);
    }
}

fn body_of(json: &str) -> Vec<u8> {
    let state: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(json).expect("a JSON object");
    rmp_serde::to_vec_named(&state).expect("MessagePack")
}

/// One call of the transform under count, apart so that callgrind can count only it.
#[inline(never)]
fn counted(op: &mut dyn FnMut() -> usize) -> usize {
    std::hint::black_box(op())
}

fn count(mode: &str, file: &str, json: &str, calls: usize) {
    let body = body_of(json);
    let mut sealer = Sealer::new();
    let mut opener = Opener { packer: Packer::new(), unpacked: Vec::new() };
    let mut out = Vec::new();
    let mut op: Box<dyn FnMut() -> usize + '_> = match mode {
        "seal" | "open" => {
            let sides = common::Sides::new();
            let mut case = sides.case(file.to_owned(), json);
            if mode == "seal" {
                Box::new(move || sides.seal(&mut case.session))
            } else {
                Box::new(move || sides.open(&case.header).len())
            }
        }
        "compress" => Box::new(|| sealer.today(&body).len()),
        "seal-a" => Box::new(|| sealer.a(&body).len()),
        "seal-b" => Box::new(|| sealer.b(&body).len()),
        "seal-c" => Box::new(|| sealer.c(&body).len()),
        "decompress" | "open-a" | "open-b" | "open-c" => {
            let stored = match mode {
                "decompress" => sealer.today(&body),
                "open-a" => sealer.a(&body),
                "open-b" => sealer.b(&body),
                _ => sealer.c(&body),
            };
            let today = mode == "decompress";
            let body = &body;
            Box::new(move || {
                if today {
                    opener.today(&stored, &mut out);
                } else {
                    opener.rewritten(&stored, &mut out);
                }
                assert_eq!(&out, body, "round trip");
                out.len()
            })
        }
        _ => panic!("unknown MODE {mode}"),
    };
    // Once outside the count: contexts and buffers are made on first use.
    op();
    let size = (0..calls).map(|_| counted(&mut *op)).last().unwrap_or(0);
    println!("{size} bytes");
}

/// The row of one state: sizes of each option and the rewrite's counts; asserts round trips.
struct Sizes {
    body: usize,
    today: Stored,
    counts: Counts,
    rewritten: usize,
    options: [Stored; 3],
}

fn sizes(json: &str) -> Sizes {
    let body = body_of(json);
    let mut sealer = Sealer::new();
    let today = sealer.today(&body);
    let options = [sealer.a(&body), sealer.b(&body), sealer.c(&body)];
    let counts = sealer.rewriter.rewrite(&body, false, &mut sealer.rewritten, &mut sealer.tail);
    let rewritten = sealer.rewritten.len();
    let mut opener = Opener { packer: Packer::new(), unpacked: Vec::new() };
    let mut out = Vec::new();
    opener.today(&today, &mut out);
    assert_eq!(out, body, "today's round trip");
    for option in &options {
        opener.rewritten(option, &mut out);
        assert_eq!(out, body, "the token encoding's round trip");
    }
    Sizes { body: body.len(), today, counts, rewritten, options }
}

fn packing(stored: &Stored) -> &'static str {
    match stored.packing {
        Packing::Stored => "stored",
        Packing::Plain => "plain",
        Packing::Dictionary => "dict",
    }
}

/// From BENCHMARKS.md, issue 27, commit `8464950`, a loaded machine: seal µs with
/// `Randomness::Os` and with `ThreadLocal` and PrivateJar's (the `randomness` bench), then
/// open µs, ours and the floor's (the `floor` bench).
const TIMES: [(&str, [f64; 5]); 11] = [
    ("api_tokens.json", [4.67, 4.17, 2.20, 3.50, 0.88]),
    ("basket.json", [6.30, 5.79, 7.16, 4.87, 2.20]),
    ("flash.json", [1.15, 0.68, 0.61, 0.65, 0.24]),
    ("history.json", [14.57, 14.03, 12.67, 6.16, 4.06]),
    ("oauth.json", [9.70, 9.18, 2.91, 3.83, 1.27]),
    ("saml.json", [4.04, 3.53, 3.66, 2.60, 1.58]),
    ("signin.json", [1.29, 0.82, 0.89, 0.79, 0.25]),
    ("wizard.json", [3.82, 3.30, 3.11, 2.47, 1.07]),
    ("gen_oidc.json", [10.23, 9.84, 3.77, 4.30, 1.78]),
    ("gen_api_keys.json", [15.30, 14.76, 7.83, 6.14, 2.97]),
    ("gen_uuids.json", [9.61, 9.12, 5.43, 4.98, 2.40]),
];

fn report(files: &[(String, String)]) {
    let mut counts: BTreeMap<(String, String), f64> = BTreeMap::new();
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("standard input");
        let words: Vec<&str> = line.split_whitespace().collect();
        if let [file, mode, n] = words[..] {
            counts.insert((file.to_owned(), mode.to_owned()), n.parse().expect("a count"));
        }
    }
    let instr = |file: &str, mode: &str| counts.get(&(file.to_owned(), mode.to_owned())).copied();
    println!(
        "| file | body B | today B | tokens (n / chars) | A B | B B | C B | compress | seal A | seal B | seal C | decompress | open A | open B | open C |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut estimates = Vec::new();
    for (file, json) in files {
        let row = sizes(json);
        let today = row.today.len();
        let cell = |stored: &Stored| {
            let mark = if stored.len() <= today { "" } else { " **larger**" };
            format!("{} {}{mark}", stored.len(), packing(stored))
        };
        let number = |mode: &str| instr(file, mode).map_or("-".to_owned(), |n| format!("{n:.0}"));
        println!(
            "| {file} | {} | {today} {} | {} / {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.body,
            packing(&row.today),
            row.counts.tokens,
            row.counts.chars,
            cell(&row.options[0]),
            cell(&row.options[1]),
            cell(&row.options[2]),
            number("compress"),
            number("seal-a"),
            number("seal-b"),
            number("seal-c"),
            number("decompress"),
            number("open-a"),
            number("open-b"),
            number("open-c"),
        );
        estimates.push((file, row));
    }
    println!();
    println!(
        "| file | random / rewritten B | seal today / PrivateJar | est. A | est. B | est. C | open today / floor | est. A | est. B | est. C |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (file, row) in estimates {
        let (_, [seal_os, seal_local, jar, open, floor]) =
            TIMES.iter().find(|(name, _)| name == file).expect("times of every state");
        let (Some(seal), Some(opened), Some(compress), Some(decompress)) = (
            instr(file, "seal"),
            instr(file, "open"),
            instr(file, "compress"),
            instr(file, "decompress"),
        ) else {
            continue;
        };
        // µs per instruction of the seal without the OS draw (ThreadLocal), which callgrind
        // does not count as instructions; of the open as it is.
        let (seal_rate, open_rate) = (seal_local / seal, open / opened);
        let large = row.body >= 2048;
        let mut seal_cells = Vec::new();
        let mut open_cells = Vec::new();
        for option in ["a", "b", "c"] {
            let sealed = instr(file, &format!("seal-{option}")).expect("counted");
            let estimate = seal_os - (compress - sealed) * seal_rate;
            seal_cells.push(format!("{:.2}x", estimate / jar));
            let restored = instr(file, &format!("open-{option}")).expect("counted");
            let estimate = open - (decompress - restored) * open_rate;
            let ratio = format!("{:.2}x", estimate / floor);
            open_cells.push(if large { ratio } else { format!("({ratio})") });
        }
        let today_open = format!("{:.2}x", open / floor);
        println!(
            "| {file} | {} / {} | {:.2}x | {} | {} |",
            row.counts.random,
            row.rewritten,
            seal_os / jar,
            seal_cells.join(" | "),
            if large { today_open } else { format!("({today_open})") }
                + " | "
                + &open_cells.join(" | "),
        );
    }
}

fn main() {
    let mut files = common::corpus_files();
    files.extend(common::generated::states());
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("count") => {
            let (file, json) = files.iter().find(|(file, _)| *file == args[3]).expect("FILE");
            count(&args[2], file, json, args[4].parse().expect("CALLS"));
        }
        Some("report") => report(&files),
        Some("files") => files.iter().for_each(|(file, _)| println!("{file}")),
        _ => {
            println!(
                "| file | body B | today B | tokens (n / chars) | random B | A B | B B | C B |"
            );
            println!("|---|---:|---:|---:|---:|---:|---:|---:|");
            for (file, json) in &files {
                let row = sizes(json);
                let [a, b, c] =
                    row.options.each_ref().map(|s| format!("{} {}", s.len(), packing(s)));
                println!(
                    "| {file} | {} | {} {} | {} / {} | {} | {a} | {b} | {c} |",
                    row.body,
                    row.today.len(),
                    packing(&row.today),
                    row.counts.tokens,
                    row.counts.chars,
                    row.counts.random,
                );
            }
        }
    }
}
