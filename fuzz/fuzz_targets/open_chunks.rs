//! Structured input: a list of session cookies, each a chunk index and a value, assembled into
//! a Cookie header (or one header per cookie). A value is either arbitrary bytes or a chunk of
//! one of the fixture's known tokens, possibly edited, so the fuzzer can mix chunks of
//! different writes, reorder, drop, duplicate and corrupt them. Same invariants as
//! `open_header` (see `src/lib.rs`).

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Input {
    /// One Cookie header per cookie (as HTTP/2 may send them) instead of one `; `-joined header.
    one_header_each: bool,
    cookies: Vec<Piece>,
}

#[derive(Debug, Arbitrary)]
struct Piece {
    name: Name,
    value: Value,
}

#[derive(Debug, Arbitrary)]
enum Name {
    /// The session's chunk `index` (`NAME` for 0, else `NAME.index`; indexes past the format's
    /// maximum included).
    Chunk(u8),
    /// Any other name.
    Other(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Value {
    Bytes(Vec<u8>),
    /// Chunk `chunk` of known session `session` (both taken modulo what exists).
    Known {
        session: u8,
        chunk: u8,
        edit: Edit,
    },
}

#[derive(Debug, Arbitrary)]
enum Edit {
    None,
    Flip { at: u16, bits: u8 },
    Truncate(u16),
    Append(Vec<u8>),
}

fuzz_target!(
    init: {
        sealed_session_fuzz::fixture();
    },
    |input: Input| {
        let fixture = sealed_session_fuzz::fixture();
        let base = fixture.subjects[0].codec.config().cookie_name();
        let known: Vec<_> = fixture.subjects.iter().flat_map(|s| &s.known).collect();
        let cookies: Vec<String> = input
            .cookies
            .iter()
            .map(|piece| {
                let name = match &piece.name {
                    Name::Chunk(0) => base.to_owned(),
                    Name::Chunk(index) => format!("{base}.{index}"),
                    Name::Other(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                };
                let value = match &piece.value {
                    Value::Bytes(bytes) => String::from_utf8_lossy(bytes).into_owned(),
                    Value::Known { session, chunk, edit } => {
                        let token = known[usize::from(*session) % known.len()];
                        let chunk = &token.chunks[usize::from(*chunk) % token.chunks.len()];
                        let mut bytes = chunk.as_bytes().to_vec();
                        match edit {
                            Edit::None => {}
                            Edit::Flip { at, bits } => {
                                if !bytes.is_empty() {
                                    let at = usize::from(*at) % bytes.len();
                                    bytes[at] ^= bits;
                                }
                            }
                            Edit::Truncate(len) => bytes.truncate(usize::from(*len)),
                            Edit::Append(tail) => bytes.extend_from_slice(tail),
                        }
                        String::from_utf8_lossy(&bytes).into_owned()
                    }
                };
                format!("{name}={value}")
            })
            .collect();
        if input.one_header_each {
            let headers: Vec<&str> = cookies.iter().map(String::as_str).collect();
            sealed_session_fuzz::check(&headers);
        } else {
            sealed_session_fuzz::check(&[cookies.join("; ").as_str()]);
        }
    }
);
