//! The text of a token: base64url without padding (RFC 4648, section 5).
//!
//! Decoding is strict, as `FORMAT.md` requires: no padding, no characters outside the URL-safe
//! alphabet, no length that leaves one character over, and zero trailing bits in the last
//! character, so that every token has exactly one text.
//!
//! Every request decodes its cookie and every write encodes one, so this is `base64-simd`
//! rather than the `base64` crate the cold paths (key files, CSRF tokens) use: for a 517-byte
//! cookie it takes about 1,100 instructions to decode where `base64` takes 3,900 (callgrind,
//! `examples/hot_path.rs`). The test below holds the two to the same answers.

use base64_simd::{Out, URL_SAFE_NO_PAD};

/// The text of `bytes`.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode_to_string(bytes)
}

/// Decodes `text` into `out`, replacing what it held; `None` when `text` is not strict
/// unpadded base64url. On `None`, `out` may hold part of the decoded bytes.
pub(crate) fn decode_into(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let len = URL_SAFE_NO_PAD.decoded_length(text).ok()?;
    out.clear();
    out.resize(len, 0);
    URL_SAFE_NO_PAD.decode(text, Out::from_slice(out)).ok()?;
    Some(())
}

/// Decodes `text` into `out`, which it must fill exactly; `None` when it is not strict
/// unpadded base64url of `out.len()` bytes.
pub(crate) fn decode_exact(text: &[u8], out: &mut [u8]) -> Option<()> {
    if URL_SAFE_NO_PAD.decoded_length(text).ok()? != out.len() {
        return None;
    }
    URL_SAFE_NO_PAD.decode(text, Out::from_slice(out)).ok()?;
    Some(())
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as REFERENCE;
    use proptest::prelude::*;

    use super::*;

    /// What the `base64` crate (the format's reference decoder) makes of `text`.
    fn reference(text: &[u8]) -> Option<Vec<u8>> {
        REFERENCE.decode(text).ok()
    }

    fn decoded(text: &[u8]) -> Option<Vec<u8>> {
        let mut out = vec![0xaa; 3];
        decode_into(text, &mut out).map(|()| out)
    }

    #[test]
    fn edge_cases_agree_with_the_reference() {
        // (text, valid): padding, the standard alphabet, a length one past a group, trailing
        // bits, whitespace and bytes outside ASCII.
        let cases: [(&[u8], bool); 14] = [
            (b"", true),
            (b"AA", true),
            (b"AB", false),
            (b"AAA", true),
            (b"AAB", false),
            (b"AAAA", true),
            (b"A", false),
            (b"AAAAA", false),
            (b"AA==", false),
            (b"-_-_", true),
            (b"+/+/", false),
            (b"AA AA", false),
            (b"AA\nA", false),
            (b"AA\xc3\xa9", false),
        ];
        for (text, valid) in cases {
            assert_eq!(decoded(text), reference(text), "{}", text.escape_ascii());
            assert_eq!(decoded(text).is_some(), valid, "{}", text.escape_ascii());
        }
    }

    #[test]
    fn the_header_prefix_decodes_exactly() {
        let mut header = [0u8; 6];
        assert_eq!(decode_exact(b"AQEAAAAH", &mut header), Some(()));
        assert_eq!(header, [1, 1, 0, 0, 0, 7]);
        for short_or_long in [&b"AQEAAAA"[..], b"AQEAAAAHA", b"AQEAAA=="] {
            assert_eq!(decode_exact(short_or_long, &mut header), None);
        }
    }

    proptest! {
        #[test]
        fn encodings_agree_with_the_reference(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
            let text = encode(&bytes);
            prop_assert_eq!(&text, &REFERENCE.encode(&bytes));
            prop_assert_eq!(decoded(text.as_bytes()), Some(bytes));
        }

        #[test]
        fn decodings_agree_with_the_reference(
            bytes in prop::collection::vec(any::<u8>(), 0..700),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in 0usize..3,
        ) {
            // A valid text with one byte changed and up to two cut off: every kind of damage.
            let mut text = REFERENCE.encode(&bytes).into_bytes();
            if !text.is_empty() {
                let at = at.index(text.len());
                text[at] = byte;
            }
            text.truncate(text.len().saturating_sub(cut));
            prop_assert_eq!(decoded(&text), reference(&text));
        }
    }
}
