//! The MessagePack sections of a frame: a map of string keys to values, each value kept as its own
//! encoded bytes so it is decoded only when the application reads it.
//!
//! Opening a session walks the map once to find where each value starts and ends; it never builds
//! a value tree. The walk checks every declared length against the bytes that remain and bounds
//! the nesting depth, so an authenticated but hostile (or corrupted) section cannot make it
//! allocate or recurse without limit.

use std::ops::Range;

use rmp::Marker;

use super::MAX_DEPTH;

/// Appends a map header for `len` entries.
pub(crate) fn write_map_len(len: usize, out: &mut Vec<u8>) {
    let len = u32::try_from(len).expect("a session never holds 2^32 values");
    rmp::encode::write_map_len(out, len).expect("writing to a Vec cannot fail");
}

/// Appends a string key.
pub(crate) fn write_key(key: &str, out: &mut Vec<u8>) {
    rmp::encode::write_str(out, key).expect("writing to a Vec cannot fail");
}

/// The entries of a section (one MessagePack map with string keys), read one at a time so
/// that opening builds no list of them. Each entry is a pair of ranges into `section`: the
/// key's UTF-8 text (without its MessagePack header) and the value's encoded bytes. Returns
/// `None` when the section does not start with a map header whose length the bytes could hold;
/// the iterator then yields `Some(None)` (and stops) at the first entry that is not a string
/// key and one complete value within the depth limit, or at bytes after the last entry.
pub(crate) fn map_entries(section: &[u8]) -> Option<MapEntries<'_>> {
    let (&first, rest) = section.split_first()?;
    let (left, rest) = match Marker::from_u8(first) {
        Marker::FixMap(n) => (usize::from(n), rest),
        Marker::Map16 => read_len(rest, 2)?,
        Marker::Map32 => read_len(rest, 4)?,
        _ => return None,
    };
    // Each entry takes at least two bytes.
    if left > rest.len() / 2 {
        return None;
    }
    Some(MapEntries { left, section, at: section.len() - rest.len(), failed: false })
}

/// The iterator [`map_entries`] returns.
pub(crate) struct MapEntries<'a> {
    left: usize,
    section: &'a [u8],
    /// Where the next entry starts in `section`.
    at: usize,
    failed: bool,
}

impl MapEntries<'_> {
    fn entry(&mut self) -> Option<(Range<usize>, Range<usize>)> {
        let rest = &self.section[self.at..];
        let key_len = value_len(rest, 1)?;
        let key = str_text(&rest[..key_len])?;
        let key_end = self.at + key_len;
        let value_len = value_len(&self.section[key_end..], 1)?;
        let value_end = key_end + value_len;
        self.at = value_end;
        Some((key_end - key.len()..key_end, key_end..value_end))
    }
}

impl Iterator for MapEntries<'_> {
    type Item = Option<(Range<usize>, Range<usize>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || (self.left == 0 && self.at == self.section.len()) {
            return None;
        }
        let entry = match self.left {
            0 => None,
            _ => {
                self.left -= 1;
                self.entry()
            }
        };
        self.failed = entry.is_none();
        Some(entry)
    }
}

/// The `(key, value bytes)` pairs of a whole section, or `None` if any entry is invalid.
#[cfg(test)]
pub(crate) fn split_map(section: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    let text = |range: Range<usize>| std::str::from_utf8(&section[range]).ok();
    map_entries(section)?
        .map(|entry| entry.and_then(|(key, value)| Some((text(key)?, &section[value]))))
        .collect()
}

/// The text of the string `bytes` holds, checked to be UTF-8 (an ASCII key, the usual kind, is
/// checked with a plain scan: `from_utf8` costs a call of several dozen instructions per key).
fn str_text(bytes: &[u8]) -> Option<&[u8]> {
    let (&first, rest) = bytes.split_first()?;
    let body = match Marker::from_u8(first) {
        Marker::FixStr(_) => rest,
        Marker::Str8 => rest.get(1..)?,
        Marker::Str16 => rest.get(2..)?,
        Marker::Str32 => rest.get(4..)?,
        _ => return None,
    };
    (body.is_ascii() || std::str::from_utf8(body).is_ok()).then_some(body)
}

/// Reads a big-endian length of `width` bytes and returns it with the rest of the input.
fn read_len(input: &[u8], width: usize) -> Option<(usize, &[u8])> {
    let (bytes, rest) = input.split_at_checked(width)?;
    let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    Some((len, rest))
}

/// The length in bytes of the first complete MessagePack value in `input`, or `None` if it is
/// truncated, uses the reserved marker, or nests deeper than [`MAX_DEPTH`] (`depth` is the level
/// of that first value).
///
/// Opening a session walks every nested value of every entry (a 10-line cart is about 90), so
/// the usual case takes the shortest walk there is: one count of the values still to read,
/// whatever their level, and one table look-up per value (see [`MARKERS`]). That walk cannot
/// see levels, but a value can only nest as deep as it has containers: one with more
/// containers than levels left is walked again by [`value_len_by_level`], which can.
pub(crate) fn value_len(input: &[u8], depth: usize) -> Option<usize> {
    // Checked here and where a level is entered, so it holds all along.
    if depth > MAX_DEPTH {
        return None;
    }
    let (fixed, items) = marker(input)?;
    if items == 0 {
        // A scalar (every key, many values): no walk.
        return (fixed <= input.len()).then_some(fixed);
    }
    let levels_left = MAX_DEPTH - depth;
    let mut containers = 0;
    let mut remaining = 1usize;
    let mut rest = input;
    loop {
        let (fixed, items) = marker(rest)?;
        rest = rest.get(fixed..)?;
        remaining -= 1;
        if items > 0 {
            containers += 1;
            if containers > levels_left {
                return value_len_by_level(input, depth);
            }
            // Every value still to read takes at least one byte, so a count past the input
            // is a lie. On a 32-bit target an array32's count can be `usize::MAX`, and with
            // values left a plain sum would wrap below the input's length: see `more_values`.
            remaining = more_values(remaining, items);
            if remaining > rest.len() {
                return None;
            }
        }
        if remaining == 0 {
            return Some(input.len() - rest.len());
        }
    }
}

/// [`value_len`] for a value with many containers: the walk keeps the count of values still
/// to read at each level (`pending` at the current one, `outer` around it), so it knows how
/// deep it is. Iterative, so nesting costs no call frames.
fn value_len_by_level(input: &[u8], depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    // A count is at most the input's length, which a state bounds far below 4 GiB (and a
    // larger one is refused below).
    let mut outer = [0u32; MAX_DEPTH];
    let max_level = MAX_DEPTH - depth;
    let mut level = 0;
    let mut pending = 1usize;
    let mut rest = input;
    loop {
        let (fixed, items) = marker(rest)?;
        rest = rest.get(fixed..)?;
        pending -= 1;
        if items > 0 {
            // Every nested value takes at least one byte, so a count past the input is a lie.
            if items > rest.len() || level == max_level {
                return None;
            }
            outer[level] = u32::try_from(pending).ok()?;
            level += 1;
            pending = items;
        }
        while pending == 0 {
            if level == 0 {
                return Some(input.len() - rest.len());
            }
            level -= 1;
            pending = outer[level] as usize;
        }
    }
}

/// The bytes and nested values of every value whose marker alone says (see [`header`]):
/// positive and negative fixint, nil and booleans, fixstr, fixarray, fixmap, and fixed-width
/// numbers. `(0, 0)` for the others, which [`header`] reads.
static MARKERS: [(u8, u8); 256] = {
    let mut table = [(0u8, 0u8); 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = match b {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (1, 0),
            0xa0..=0xbf => (1 + (b & 0x1f), 0),
            0x90..=0x9f => (1, b & 0x0f),
            0x80..=0x8f => (1, 2 * (b & 0x0f)),
            0xcc | 0xd0 => (2, 0),
            0xcd | 0xd1 => (3, 0),
            0xce | 0xd2 | 0xca => (5, 0),
            0xcf | 0xd3 | 0xcb => (9, 0),
            _ => (0, 0),
        };
        byte += 1;
    }
    table
};

/// [`header`], with the common markers read from [`MARKERS`].
#[inline(always)]
fn marker(input: &[u8]) -> Option<(usize, usize)> {
    let &first = input.first()?;
    match MARKERS[usize::from(first)] {
        (0, _) => header(input),
        (fixed, items) => Some((usize::from(fixed), usize::from(items))),
    }
}

/// The bytes a value's header and payload take (`fixed`, from the marker on) and how many nested
/// values follow them (`items`; a map's keys and values both count).
///
/// A 32-bit length read from the input may be close to `usize::MAX` on a 32-bit target, so the
/// lengths are combined with checked arithmetic: a sum or product that does not fit is a value
/// the input cannot hold, and `None`.
fn header(input: &[u8]) -> Option<(usize, usize)> {
    let (&first, rest) = input.split_first()?;
    let (fixed, items) = match Marker::from_u8(first) {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => {
            (0, 0)
        }
        Marker::U8 | Marker::I8 => (1, 0),
        Marker::U16 | Marker::I16 => (2, 0),
        Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
        Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
        Marker::FixStr(n) => (usize::from(n), 0),
        Marker::Str8 | Marker::Bin8 => (payload(1, read_len(rest, 1)?.0)?, 0),
        Marker::Str16 | Marker::Bin16 => (payload(2, read_len(rest, 2)?.0)?, 0),
        Marker::Str32 | Marker::Bin32 => (payload(4, read_len(rest, 4)?.0)?, 0),
        Marker::FixExt1 => (2, 0),
        Marker::FixExt2 => (3, 0),
        Marker::FixExt4 => (5, 0),
        Marker::FixExt8 => (9, 0),
        Marker::FixExt16 => (17, 0),
        // The length, then the type byte, then the payload.
        Marker::Ext8 => (payload(2, read_len(rest, 1)?.0)?, 0),
        Marker::Ext16 => (payload(3, read_len(rest, 2)?.0)?, 0),
        Marker::Ext32 => (payload(5, read_len(rest, 4)?.0)?, 0),
        Marker::FixArray(n) => (0, usize::from(n)),
        Marker::Array16 => (2, read_len(rest, 2)?.0),
        Marker::Array32 => (4, read_len(rest, 4)?.0),
        Marker::FixMap(n) => (0, 2 * usize::from(n)),
        Marker::Map16 => (2, map_items(read_len(rest, 2)?.0)?),
        Marker::Map32 => (4, map_items(read_len(rest, 4)?.0)?),
        Marker::Reserved => return None,
    };
    Some((fixed.checked_add(1)?, items))
}

/// The bytes after the marker of a value whose `len` payload bytes follow `before` bytes of
/// length (and type); `None` when the sum does not fit a `usize`.
fn payload(before: usize, len: usize) -> Option<usize> {
    before.checked_add(len)
}

/// The values still to read once a container's `items` join the `remaining` ones, or
/// `usize::MAX` when the sum does not fit: more than any input holds, so the walk's length check
/// refuses it, as it would a `checked_add`'s `None`. Saturating rather than checked because
/// this runs for every container of every request's state: `checked_add(items)?` added a branch
/// that cost the read path 175 instructions a request (scripts/hot-path.sh, codec read), a
/// saturating add 22.
fn more_values(remaining: usize, items: usize) -> usize {
    remaining.saturating_add(items)
}

/// The nested values of a map of `pairs` entries (a key and a value each); `None` when the
/// count does not fit a `usize`.
fn map_items(pairs: usize) -> Option<usize> {
    pairs.checked_mul(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn encode<T: serde::Serialize>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(value).unwrap()
    }

    #[test]
    fn value_len_matches_encoder_for_every_kind() {
        let big_str = "x".repeat(70_000);
        let values: Vec<Vec<u8>> = vec![
            encode(&0u8),
            encode(&-1i8),
            encode(&u64::MAX),
            encode(&i64::MIN),
            encode(&1.5f32),
            encode(&2.5f64),
            encode(&()),
            encode(&true),
            encode(&"short"),
            encode(&"y".repeat(300)),
            encode(&big_str),
            encode(&serde_bytes_like(&[1u8; 40])),
            encode(&vec![1u32; 20]),
            encode(&BTreeMap::from([("a", vec![Some(1)]), ("b", vec![None])])),
        ];
        for bytes in values {
            assert_eq!(value_len(&bytes, 1), Some(bytes.len()), "{bytes:02x?}");
            // Any truncation is caught.
            assert_eq!(value_len(&bytes[..bytes.len() - 1], 1), None);
        }
    }

    fn serde_bytes_like(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        rmp::encode::write_bin(&mut out, bytes).unwrap();
        out
    }

    #[test]
    fn the_marker_table_agrees_with_the_header() {
        for byte in 0..=255u8 {
            // Enough bytes after the marker for any fixed-width header.
            let input = [byte, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            let fast = MARKERS[usize::from(byte)];
            if fast != (0, 0) {
                let fast = (usize::from(fast.0), usize::from(fast.1));
                assert_eq!(Some(fast), header(&input), "{byte:#04x}");
            }
            assert_eq!(marker(&input), header(&input), "{byte:#04x}");
        }
    }

    proptest::proptest! {
        #[test]
        fn both_walks_agree(
            bytes in proptest::collection::vec(
                // Containers, scalars and strings of every width, and any byte at all.
                proptest::prop_oneof![
                    proptest::sample::select(
                        &[0x91u8, 0x92, 0x9f, 0x81, 0x82, 0x8f, 0xdc, 0xde, 0x00, 0xa1, 0xcc][..],
                    ),
                    proptest::prelude::any::<u8>(),
                ],
                0..120,
            ),
            depth in 0usize..=MAX_DEPTH + 1,
        ) {
            proptest::prop_assert_eq!(value_len(&bytes, depth), value_len_by_level(&bytes, depth));
        }
    }

    #[test]
    fn ext_values_are_skipped() {
        let mut out = Vec::new();
        rmp::encode::write_ext_meta(&mut out, 3, 7).unwrap();
        out.extend_from_slice(&[0; 3]);
        assert_eq!(value_len(&out, 1), Some(out.len()));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut deep = vec![0x91; MAX_DEPTH + 5];
        deep.push(0x00);
        assert_eq!(value_len(&deep, 1), None);
        let mut ok = vec![0x91; MAX_DEPTH - 1];
        ok.push(0x00);
        assert_eq!(value_len(&ok, 1), Some(ok.len()));
        // The same value one level deeper, or one more array: just past the limit.
        assert_eq!(value_len(&ok, 2), None);
        let mut edge = vec![0x91; MAX_DEPTH];
        edge.push(0x00);
        assert_eq!(value_len(&edge, 1), None);
    }

    #[test]
    fn lying_lengths_are_rejected_without_allocating() {
        // An array claiming 2^32-1 items, a string claiming 4 GiB, a map claiming 2^32-1 pairs.
        assert_eq!(value_len(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0x00], 1), None);
        assert_eq!(value_len(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'], 1), None);
        assert_eq!(split_map(&[0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'a', 0x00]), None);
        assert_eq!(value_len(&[0xc1], 1), None);
    }

    #[test]
    fn length_arithmetic_never_overflows() {
        // A 32-bit length can be `usize::MAX` itself on a 32-bit target; these are the sums and
        // the product `header` makes with one (an overflow panics in debug, wraps in release).
        for len in [usize::MAX, usize::MAX - 4, usize::MAX - 1] {
            assert_eq!(payload(5, len), None, "{len}");
        }
        assert_eq!(payload(4, usize::MAX - 4), Some(usize::MAX));
        assert_eq!(map_items(usize::MAX / 2 + 1), None);
        assert_eq!(map_items(usize::MAX), None);
        assert_eq!(map_items(usize::MAX / 2), Some(usize::MAX - 1));
        // The fast walk's count of values still to read, when a container's count joins it:
        // (values left, the container's items, the count), a 32-bit target's largest count
        // with values left included. `usize::MAX` is past any input: the walk refuses it.
        let sums = [
            (1, usize::MAX, usize::MAX),
            (usize::MAX, 1, usize::MAX),
            (2, usize::MAX - 1, usize::MAX),
            (1, usize::MAX - 2, usize::MAX - 1),
            (3, 4, 7),
        ];
        for (remaining, items, sum) in sums {
            assert_eq!(more_values(remaining, items), sum, "{remaining} + {items}");
        }
        // The largest 32-bit lengths, through the header: exact where they fit, `None`
        // otherwise, never a smaller (wrapped) size.
        let max32 = u32::MAX as usize;
        let exact = |bytes: &[u8], fixed: Option<usize>, items: Option<usize>| {
            let expected = fixed.zip(items).and_then(|(f, i)| Some((f.checked_add(1)?, i)));
            assert_eq!(header(bytes), expected, "{bytes:02x?}");
        };
        exact(&[0xdb, 0xff, 0xff, 0xff, 0xff], max32.checked_add(4), Some(0));
        exact(&[0xc6, 0xff, 0xff, 0xff, 0xff], max32.checked_add(4), Some(0));
        exact(&[0xc9, 0xff, 0xff, 0xff, 0xff, 0x01], max32.checked_add(5), Some(0));
        exact(&[0xdf, 0xff, 0xff, 0xff, 0xff], Some(4), max32.checked_mul(2));
        // And such a value never fits the bytes that follow it, nor does an array32 or map32
        // of the largest count nested in a container with values still to read after it.
        let nested: [&[u8]; 6] = [
            &[0xdb, 0xff, 0xff, 0xff, 0xff],
            &[0xc9, 0xff, 0xff, 0xff, 0xff, 1],
            &[0x92, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
            &[0x93, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02],
            &[0x82, 0xa1, b'a', 0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, b'b', 0x01],
            &[0x92, 0x91, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01],
        ];
        for bytes in nested {
            assert_eq!(value_len(bytes, 1), None, "{bytes:02x?}");
        }
    }

    #[test]
    fn split_map_finds_each_value() {
        let mut out = Vec::new();
        write_map_len(2, &mut out);
        write_key("n", &mut out);
        out.extend_from_slice(&encode(&42u32));
        write_key("list", &mut out);
        out.extend_from_slice(&encode(&vec!["a", "b"]));
        let entries = split_map(&out).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0], ("n", &encode(&42u32)[..]));
        assert_eq!(entries[1].0, "list");
        assert_eq!(rmp_serde::from_slice::<Vec<String>>(entries[1].1).unwrap(), ["a", "b"]);
        // Trailing bytes, non-string keys and invalid UTF-8 keys are all rejected.
        let mut trailing = out.clone();
        trailing.push(0);
        assert_eq!(split_map(&trailing), None);
        assert_eq!(split_map(&[0x81, 0x01, 0x02]), None);
        assert_eq!(split_map(&[0x81, 0xa1, 0xff, 0x02]), None);
        // A key outside ASCII is as good as any UTF-8.
        assert_eq!(split_map(&[0x81, 0xa2, 0xc3, 0xa9, 0x02]), Some(vec![("é", &[0x02][..])]));
    }
}
