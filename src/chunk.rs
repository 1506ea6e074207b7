//! Splitting a token across cookies, and finding its chunks in a Cookie header.
//!
//! Chunk `0` is named after the session (`NAME`); chunk `i > 0` is `NAME.i`. The chunk count is
//! in the token's header, so it is authenticated: chunks mixed from two writes, reordered or
//! dropped fail to open, and cookies past the count are leftovers to remove.

use smallvec::SmallVec;

use crate::error::RejectReason;
use crate::format::{HEADER_CHARS, MAX_CHUNKS, MAX_NAME_VARIANTS};

/// The name of chunk `index`.
pub(crate) fn chunk_name(base: &str, index: usize) -> String {
    if index == 0 { base.to_owned() } else { format!("{base}.{index}") }
}

/// The bit mask of chunks `0..count` (`count` at most [`MAX_CHUNKS`]).
pub(crate) fn mask(count: usize) -> u64 {
    // MAX_CHUNKS < 64: the shift stays in range.
    (1u64 << count.min(MAX_CHUNKS)) - 1
}

/// The `;`-separated pieces of a Cookie header. `memchr` finds each separator a word at a time:
/// the header is mostly our long token, and a byte-by-byte split of it cost every request
/// about 0.2 µs more (codec bench, `open`).
fn pieces(header: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(header);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b';', current) {
            Some(end) => {
                rest = Some(&current[end + 1..]);
                Some(&current[..end])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// Bytes a chunk's name takes beyond the base name.
fn suffix_len(index: usize) -> usize {
    match index.checked_ilog10() {
        None => 0,
        Some(digits) => 2 + digits as usize,
    }
}

/// The share of the Cookie request header that cookies with these value lengths take, as the
/// budget counts it: `name=value` plus a two-byte separator for each.
pub(crate) fn header_share(base: &str, lens: &[usize]) -> usize {
    lens.iter().enumerate().map(|(i, len)| base.len() + suffix_len(i) + 1 + len + 2).sum()
}

/// The value length of each chunk for a token of `total` encoded bytes, when every Set-Cookie
/// line may take `max_line` bytes and its attributes (with the `=`) take `attrs_len`. Fills
/// every chunk but the last. `None` when more than `max_chunks` chunks would be needed, or when
/// the first chunk cannot hold the token's header ([`HEADER_CHARS`]): a first piece shorter
/// than that never opens, so the seal must fail rather than write it (`build` refuses such a
/// configuration; this is the second line of defence).
pub(crate) fn plan(
    total: usize,
    base_len: usize,
    attrs_len: usize,
    max_line: usize,
    max_chunks: usize,
) -> Option<Vec<usize>> {
    let mut lens = Vec::new();
    let mut left = total;
    while left > 0 || lens.is_empty() {
        let index = lens.len();
        if index == max_chunks {
            return None;
        }
        let capacity = max_line.checked_sub(attrs_len + base_len + suffix_len(index))?;
        // A first piece shorter than the header never opens (FORMAT.md 6.1). A later piece
        // may be short, but not empty: the plan would never end.
        if capacity == 0 || (index == 0 && capacity < HEADER_CHARS) {
            return None;
        }
        let len = left.min(capacity);
        lens.push(len);
        left -= len;
    }
    Some(lens)
}

/// The session's cookies found in a request, not yet trusted.
#[derive(Debug, Default)]
pub(crate) struct Found<'h> {
    /// `(chunk index, value)` in the order the client sent them.
    /// Inline for the usual few cookies: opening allocates nothing for them.
    pub(crate) chunks: SmallVec<[(u8, &'h str); 4]>,
    /// Bit `i` is set when chunk `i` was present.
    pub(crate) seen: u64,
}

impl<'h> Found<'h> {
    /// Collects the cookies named `base` or `base.i` from Cookie header values. Other cookies
    /// are skipped; unparsable pieces are skipped as browsers would.
    ///
    /// The headers are bytes: servers pass bytes outside visible ASCII through (`theme=café`,
    /// in UTF-8 or Latin-1), and another cookie's bytes must not cost the session. Only the
    /// pieces whose name is one of ours are read as text, and one that is not UTF-8 is
    /// skipped like any unparsable piece (a cookie of ours is ASCII). Nothing is allocated.
    ///
    /// A piece is read as the `cookie` crate parses a `name=value` pair (split at the first
    /// `=`, both sides trimmed), but by hand: the crate's parser also looks for attributes
    /// through the whole (long) value and builds a cookie, for every request.
    pub(crate) fn collect(
        headers: impl IntoIterator<Item = &'h [u8]>,
        base: &str,
    ) -> Result<Found<'h>, RejectReason> {
        let mut found = Found::default();
        for header in headers {
            for piece in pieces(header) {
                // Without an `=` a piece is no cookie. The name is checked before the (long)
                // value is read at all.
                let Some(eq) = memchr::memchr(b'=', piece) else { continue };
                let Ok(name) = std::str::from_utf8(&piece[..eq]) else { continue };
                let Some(index) = chunk_index(name.trim(), base) else { continue };
                let Ok(value) = std::str::from_utf8(&piece[eq + 1..]) else { continue };
                if found.chunks.len() == MAX_CHUNKS * MAX_NAME_VARIANTS {
                    return Err(RejectReason::TooLarge("too many session cookies"));
                }
                found.seen |= 1 << index;
                found.chunks.push((index, value.trim()));
            }
        }
        Ok(found)
    }

    /// The value of chunk `index` in variant `variant`: the `variant`-th occurrence of that
    /// name, or its last occurrence when there are fewer.
    pub(crate) fn get(&self, index: u8, variant: usize) -> Option<&'h str> {
        let mut last = None;
        for (n, value) in
            self.chunks.iter().filter(|(i, _)| *i == index).map(|(_, v)| *v).enumerate()
        {
            last = Some(value);
            if n == variant {
                break;
            }
        }
        last
    }

    /// How many variants are worth trying: the most times any one chunk name occurs.
    pub(crate) fn variants(&self) -> usize {
        // The usual case: no name occurs twice.
        if self.chunks.len() == self.seen.count_ones() as usize {
            return usize::from(!self.chunks.is_empty());
        }
        (0..MAX_CHUNKS as u8)
            .filter(|index| self.seen & (1 << index) != 0)
            .map(|index| self.chunks.iter().filter(|(i, _)| *i == index).count())
            .max()
            .unwrap_or(0)
            .min(MAX_NAME_VARIANTS)
    }
}

/// `Some(i)` when `name` is chunk `i` of `base`. Indexes are written without leading zeros, so
/// each chunk has exactly one name.
fn chunk_index(name: &str, base: &str) -> Option<u8> {
    let rest = name.strip_prefix(base)?;
    if rest.is_empty() {
        return Some(0);
    }
    let digits = rest.strip_prefix('.')?;
    let canonical = !digits.starts_with('0') && digits.bytes().all(|b| b.is_ascii_digit());
    if digits.is_empty() || digits.len() > 2 || !canonical {
        return None;
    }
    let index: u8 = digits.parse().ok()?;
    (usize::from(index) < MAX_CHUNKS).then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_indexes_agree() {
        for index in 0..MAX_CHUNKS {
            let name = chunk_name("s", index);
            assert_eq!(chunk_index(&name, "s"), Some(index as u8));
            assert_eq!(name.len(), 1 + suffix_len(index));
        }
        for other in
            ["s.0", "s.01", "s.32", "s.100", "s.", "s.x", "sx", "t", "s.-1", "s.+1", "s. 1"]
        {
            assert_eq!(chunk_index(other, "s"), None, "{other}");
        }
    }

    #[test]
    fn plan_fills_lines_to_the_limit() {
        assert_eq!(plan(0, 7, 50, 4096, MAX_CHUNKS), Some(vec![0]));
        assert_eq!(plan(100, 7, 50, 4096, MAX_CHUNKS), Some(vec![100]));
        let lens = plan(10_000, 7, 50, 4096, MAX_CHUNKS).unwrap();
        assert_eq!(lens, vec![4096 - 57, 4096 - 59, 10_000 - (4096 - 57) - (4096 - 59)]);
        assert_eq!(plan(usize::MAX / 2, 7, 50, 4096, MAX_CHUNKS), None);
        assert_eq!(plan(10, 7, 5000, 4096, MAX_CHUNKS), None);
        // (attributes' length, plan for 100 characters) at the edge where the first chunk
        // can just hold the 8 header characters: one less and nothing is written.
        let edge = 4096 - 7 - HEADER_CHARS;
        let cases = [
            (edge, Some(vec![8, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 5, 5, 3])),
            (edge + 1, None),
            (edge + 7, None),
        ];
        for (attrs_len, expected) in cases {
            assert_eq!(plan(100, 7, attrs_len, 4096, MAX_CHUNKS), expected, "{attrs_len}");
        }
        assert_eq!(plan(1000, 1, 50, 100, usize::MAX).map(|lens| lens.len()), Some(22));
        assert_eq!(header_share("s", &[3, 4]), "s=abc; s.1=abcd; ".len());
        assert_eq!(suffix_len(100), ".100".len());
    }

    #[test]
    fn collects_only_our_cookies() {
        let headers = ["a=1; s=x; s.1=y; b=s.3; as=1", "s.2=z; s.9x=no; s=x2"];
        let found = Found::collect(headers.map(str::as_bytes), "s").unwrap();
        assert_eq!(found.chunks[..], [(0, "x"), (1, "y"), (2, "z"), (0, "x2")]);
        assert_eq!(found.seen, 0b111);
        assert_eq!(found.variants(), 2);
        assert_eq!(found.get(0, 0), Some("x"));
        assert_eq!(found.get(0, 1), Some("x2"));
        assert_eq!(found.get(1, 1), Some("y"), "falls back to the last occurrence");
        assert_eq!(found.get(3, 0), None);
    }

    #[test]
    fn other_cookies_may_hold_any_byte() {
        // (header, the chunks found): bytes outside visible ASCII, UTF-8 or not, in another
        // cookie's name or value; a piece of ours that is not UTF-8 is skipped.
        type Case<'a> = (&'a [u8], &'a [(u8, &'a str)]);
        let cases: [Case<'_>; 6] = [
            (b"theme=caf\xc3\xa9; s=x", &[(0, "x")]),
            (b"theme=caf\xe9; s=x; s.1=y", &[(0, "x"), (1, "y")]),
            (b"\xff\xfe=\x00\x01\x7f; s=x", &[(0, "x")]),
            (b"s=x; caf\xe9=1", &[(0, "x")]),
            (b"s=\xe9; s=x", &[(0, "x")]),
            (b"\xe9s=1; s=x", &[(0, "x")]),
        ];
        for (header, expected) in cases {
            let found = Found::collect([header], "s").unwrap();
            assert_eq!(found.chunks[..], *expected, "{}", header.escape_ascii());
        }
    }

    /// What `collect` found before it read pieces by hand: the `cookie` crate's parser on
    /// every UTF-8 piece whose name holds `base`.
    fn collect_with_the_cookie_crate(header: &[u8], base: &str) -> Vec<(u8, String)> {
        let ours = pieces(header).filter_map(|piece| {
            let name = memchr::memchr(b'=', piece).map_or(piece, |end| &piece[..end]);
            let name = std::str::from_utf8(name).ok()?;
            if !name.contains(base) {
                return None;
            }
            std::str::from_utf8(piece).ok()
        });
        ours.filter_map(|piece| cookie::Cookie::parse(piece).ok())
            .filter_map(|cookie| {
                let (name, value) = (cookie.name_raw()?, cookie.value_raw()?);
                Some((chunk_index(name, base)?, value.to_owned()))
            })
            .collect()
    }

    proptest::proptest! {
        #[test]
        fn pieces_are_read_as_the_cookie_crate_reads_them(
            pieces in proptest::collection::vec(
                proptest::collection::vec(
                    proptest::sample::select(&b"s.1= x;\t\"\xc3\xa9\xe9=Ab"[..]),
                    0..12,
                ),
                0..6,
            ),
        ) {
            // Pieces of our name's letters, separators, spaces, quotes and bytes that are not
            // UTF-8: every way a piece can be ours, another's, or unparsable.
            let header = pieces.join(&b"; "[..]);
            let found = Found::collect([header.as_slice()], "s").unwrap();
            let found: Vec<(u8, String)> =
                found.chunks.iter().map(|&(i, value)| (i, value.to_owned())).collect();
            proptest::prop_assert_eq!(found, collect_with_the_cookie_crate(&header, "s"));
        }
    }

    #[test]
    fn bounds_the_number_of_cookies() {
        let header = "s=1; ".repeat(MAX_CHUNKS * MAX_NAME_VARIANTS + 1);
        assert!(Found::collect([header.as_bytes()], "s").is_err());
    }
}
