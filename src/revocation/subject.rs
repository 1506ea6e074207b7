//! Who a session belongs to ([`Subject`]), and the stamp a session carries for revocation.

use rmp::Marker;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::format::SESSION_ID_LEN;
use crate::format::msgpack;
use crate::session::SessionId;

/// The session key under which the adapters keep a session's revocation stamp: its lineage id
/// (which survives [`Session::renew`](crate::Session::renew)), the store's generation when the
/// subject signed in, and a tag of that subject. 34 bytes of MessagePack, added when a session
/// first gets a subject (at login); an application should not write it.
pub const STAMP_KEY: &str = "sealed-session.revocation";

/// Length of the stamp's payload: lineage, generation, subject tag.
const STAMP_LEN: usize = SESSION_ID_LEN + 8 + TAG_LEN;
/// Length of the subject tag: enough to notice that the subject changed (a collision only
/// keeps an older stamp, which can revoke more, never less).
const TAG_LEN: usize = 8;
/// MessagePack `bin 8` marker.
const BIN8: u8 = 0xc4;

/// Where a session's subject (the user it belongs to) is found: the subject is what
/// [`Revocation::revoke_subject`](super::Revocation::revoke_subject) revokes ("log out
/// everywhere"), and sessions without one are never recorded in a store.
///
/// A subject is a string, an integer or a byte string. A session value of another shape (a
/// struct, a list), or a call to `revoke_subject` with one, is a configuration mistake and is
/// refused loudly: an error on revoking, an error in the logs (and the failure policy) on
/// checking. A struct user is named by one of its fields with [`Subject::field`].
///
/// # Examples
///
/// ```
/// use sealed_session::revocation::Subject;
///
/// // session.insert("user", "ada"): the whole value is the subject.
/// let by_value = Subject::key("user");
/// // session.insert("user", &User { id: 42, name: .. }): the subject is the field `id`.
/// let by_field = Subject::field("user", "id");
/// assert_eq!(by_field.session_key(), "user");
/// # let _ = by_value;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    key: String,
    field: Option<String>,
}

impl Subject {
    /// The value stored under `key` (a string or an integer) is the subject.
    pub fn key(key: impl Into<String>) -> Subject {
        Subject { key: key.into(), field: None }
    }

    /// The value stored under `key` is a struct (a map); its field `field` (a string or an
    /// integer) is the subject.
    pub fn field(key: impl Into<String>, field: impl Into<String>) -> Subject {
        Subject { key: key.into(), field: Some(field.into()) }
    }

    /// The session key the subject is read from.
    pub fn session_key(&self) -> &str {
        &self.key
    }

    /// The subject's MessagePack bytes in a session whose values `get` returns: `Ok(None)`
    /// when the session has no value under the key (an anonymous session).
    pub(crate) fn extract<'s>(
        &self,
        get: impl FnOnce(&str) -> Option<&'s [u8]>,
    ) -> Result<Option<&'s [u8]>, SubjectError> {
        let Some(value) = get(&self.key) else { return Ok(None) };
        let subject = match &self.field {
            None => value,
            Some(field) => find_field(value, field)?,
        };
        if is_scalar(subject) { Ok(Some(subject)) } else { Err(SubjectError::NotAnId) }
    }
}

impl From<&str> for Subject {
    fn from(key: &str) -> Subject {
        Subject::key(key)
    }
}

impl From<String> for Subject {
    fn from(key: String) -> Subject {
        Subject::key(key)
    }
}

/// A subject of the wrong shape: the error says which, never what the value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubjectError {
    /// The subject is not a string, an integer or a byte string (a struct, say): name one of
    /// its fields with [`Subject::field`].
    #[error("the subject is not a string, an integer or bytes (for a struct, use Subject::field)")]
    NotAnId,
    /// [`Subject::field`] names a field the session value does not have, or the value is not
    /// a struct.
    #[error("the session value is not a struct with the configured subject field")]
    NoSuchField,
    /// The subject could not be encoded.
    #[error("the subject could not be encoded as MessagePack")]
    Encode,
}

/// The MessagePack bytes of a subject given to `revoke_subject`, checked to be an id.
pub(crate) fn encode<T: Serialize + ?Sized>(subject: &T) -> Result<Vec<u8>, SubjectError> {
    let bytes = rmp_serde::to_vec_named(subject).map_err(|_| SubjectError::Encode)?;
    if is_scalar(&bytes) { Ok(bytes) } else { Err(SubjectError::NotAnId) }
}

/// Whether `bytes` is exactly one string, integer or byte string. MessagePack writers use the
/// shortest form of each (rmp does, whatever the Rust integer type), so two encodings of the
/// same id are the same bytes.
fn is_scalar(bytes: &[u8]) -> bool {
    let Some(&first) = bytes.first() else { return false };
    let id = matches!(
        Marker::from_u8(first),
        Marker::FixPos(_)
            | Marker::FixNeg(_)
            | Marker::U8
            | Marker::U16
            | Marker::U32
            | Marker::U64
            | Marker::I8
            | Marker::I16
            | Marker::I32
            | Marker::I64
            | Marker::FixStr(_)
            | Marker::Str8
            | Marker::Str16
            | Marker::Str32
            | Marker::Bin8
            | Marker::Bin16
            | Marker::Bin32
    );
    id && msgpack::value_len(bytes, 1) == Some(bytes.len())
}

/// The bytes of field `field` of the MessagePack map `value`.
fn find_field<'s>(value: &'s [u8], field: &str) -> Result<&'s [u8], SubjectError> {
    let entries = msgpack::map_entries(value).ok_or(SubjectError::NoSuchField)?;
    for entry in entries {
        let (key, range) = entry.ok_or(SubjectError::NoSuchField)?;
        if &value[key] == field.as_bytes() {
            return Ok(&value[range]);
        }
    }
    Err(SubjectError::NoSuchField)
}

/// What a session carries for revocation (see [`STAMP_KEY`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The lineage: the same across `renew`, so logging out revokes every earlier id too.
    pub(crate) lineage: SessionId,
    /// The store's generation when the subject signed in: a later "log out everywhere" of the
    /// subject has a greater generation.
    pub(crate) generation: u64,
    /// Which subject the stamp was taken for.
    pub(crate) tag: [u8; TAG_LEN],
}

impl Stamp {
    /// The stamp in a session's value bytes, if they hold one.
    pub(crate) fn parse(raw: &[u8]) -> Option<Stamp> {
        let payload = match raw {
            [BIN8, len, payload @ ..] if usize::from(*len) == STAMP_LEN => payload,
            _ => return None,
        };
        let (lineage, rest) = payload.split_at(SESSION_ID_LEN);
        let (generation, tag) = rest.split_at(8);
        Some(Stamp {
            lineage: SessionId(lineage.try_into().ok()?),
            generation: u64::from_be_bytes(generation.try_into().ok()?),
            tag: tag.try_into().ok()?,
        })
    }

    /// The value to store under [`STAMP_KEY`].
    pub(crate) fn to_value(self) -> StampValue {
        let mut out = [0u8; STAMP_LEN];
        out[..SESSION_ID_LEN].copy_from_slice(&self.lineage.0);
        out[SESSION_ID_LEN..SESSION_ID_LEN + 8].copy_from_slice(&self.generation.to_be_bytes());
        out[SESSION_ID_LEN + 8..].copy_from_slice(&self.tag);
        StampValue(out)
    }
}

/// A stamp as a MessagePack byte string (`bin 8`).
pub(crate) struct StampValue([u8; STAMP_LEN]);

impl Serialize for StampValue {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0)
    }
}

/// The tag of a subject: the first bytes of its SHA-256.
pub(crate) fn tag(subject: &[u8]) -> [u8; TAG_LEN] {
    let digest = Sha256::digest(subject);
    let mut tag = [0u8; TAG_LEN];
    tag.copy_from_slice(&digest[..TAG_LEN]);
    tag
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct User {
        id: u64,
        name: &'static str,
    }

    fn bytes<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
        rmp_serde::to_vec_named(value).expect("encodes")
    }

    #[test]
    fn extraction_takes_ids_and_refuses_other_shapes() {
        let user = bytes(&User { id: 42, name: "ada" });
        let name = bytes(&"ada");
        let list = bytes(&[1, 2]);
        let of = |value: &[u8]| {
            let value = value.to_vec();
            move |_: &str| Some(Box::leak(value.into_boxed_slice()) as &[u8])
        };
        let id = bytes(&42u64);
        type Row<'a> = (Subject, &'a [u8], Result<Option<&'a [u8]>, SubjectError>);
        let table: [Row<'_>; 5] = [
            (Subject::key("user"), &name, Ok(Some(&name))),
            (Subject::key("user"), &user, Err(SubjectError::NotAnId)),
            (Subject::key("user"), &list, Err(SubjectError::NotAnId)),
            (Subject::field("user", "id"), &user, Ok(Some(&id))),
            (Subject::field("user", "email"), &user, Err(SubjectError::NoSuchField)),
        ];
        for (subject, value, expected) in table {
            assert_eq!(subject.extract(of(value)), expected, "{subject:?}");
        }
        assert_eq!(Subject::key("user").extract(|_| None), Ok(None), "anonymous");
        assert_eq!(Subject::field("user", "id").extract(of(&name)), Err(SubjectError::NoSuchField));
    }

    #[test]
    fn integer_ids_encode_alike_whatever_their_type() {
        assert_eq!(encode(&42u64), encode(&42i32));
        assert_eq!(encode(&300u64), encode(&300i64));
        assert_eq!(encode(&User { id: 1, name: "x" }), Err(SubjectError::NotAnId));
    }

    #[test]
    fn a_stamp_round_trips_through_a_session_value() {
        let stamp = Stamp { lineage: SessionId([9; 16]), generation: u64::MAX - 3, tag: [1; 8] };
        let raw = bytes(&stamp.to_value());
        assert_eq!(raw.len(), 2 + STAMP_LEN);
        assert_eq!(Stamp::parse(&raw), Some(stamp));
        assert_eq!(Stamp::parse(&raw[..raw.len() - 1]), None);
        assert_eq!(Stamp::parse(&bytes(&"not a stamp")), None);
    }
}
