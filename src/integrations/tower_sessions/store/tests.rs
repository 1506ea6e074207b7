//! How records map onto the sealed session, one request's store at a time.

use std::collections::BTreeMap;

use super::*;
use crate::integrations::Shared;
use crate::{Key, KeyRing, SessionCodec, SessionConfig};

/// A request's store holding a sealed session with `values`, as the layer builds it.
fn opened(values: impl FnOnce(&mut Session)) -> (Arc<RequestStore>, Id) {
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let shared = Shared::new(codec);
    let state = Arc::new(State::new(&shared, false, None));
    let mut session = Session::new();
    values(&mut session);
    let header = shared.codec.seal(&mut session, SystemTime::now()).unwrap().request_header();
    let mut opened = Session::new();
    shared.load_into([header.as_bytes()], None, &mut opened);
    let (_, store) = RequestStore::bridge(state, opened);
    let id = store.lock().id.expect("an opened session has an id");
    (store, id)
}

impl RequestStore {
    fn with<R>(&self, f: impl FnOnce(&Session) -> R) -> R {
        f(&self.lock().session)
    }
}

#[test]
fn values_json_cannot_hold_are_kept_out_of_the_record_and_in_the_session() {
    let (store, id) = opened(|session| {
        session.insert("name", "ada").unwrap();
        // A map with integer keys: MessagePack holds it, a JSON object cannot.
        session.insert("by_id", BTreeMap::from([(7u32, 1u32)])).unwrap();
        session.insert_sensitive("csrf", "token").unwrap();
    });
    let mut record = store.read(&id).expect("the opened session's record");
    let mut keys: Vec<&str> = record.data.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["csrf", "name"]);

    record.data.remove("name");
    record.data.insert("csrf".into(), Value::from("rotated"));
    store.lock().finishing = true;
    store.write(&record).expect("written back");
    let bridged = store.lock();
    let session = &bridged.session;
    assert_eq!(session.keys().collect::<Vec<_>>(), ["by_id", "csrf"]);
    assert_eq!(session.get::<BTreeMap<u32, u32>>("by_id").unwrap(), Some(BTreeMap::from([(7, 1)])));
    assert_eq!(session.get::<String>("csrf").unwrap().as_deref(), Some("rotated"));
    assert!(session.is_sensitive("csrf"), "a sensitive value stays sensitive");
}

#[test]
fn delete_ends_the_opened_session_and_only_it() {
    let (store, id) = opened(|session| session.insert("name", "ada").unwrap());
    store.delete(&Id(id.0 ^ 1));
    let kept = store.with(|session| !session.is_purged() && session.len() == 1);
    assert!(kept, "another id ends nothing");
    store.delete(&id);
    let bridged = store.lock();
    assert!(bridged.session.is_purged() && bridged.session.ended().is_some());
    assert_eq!(bridged.id, None, "the record is gone");
}

#[test]
fn a_tower_sessions_id_shows_the_sealed_id_bytes_in_order() {
    let bytes: [u8; 16] = std::array::from_fn(|i| i as u8);
    let id = tower_id(SessionId(bytes));
    // tower-sessions displays an id as the base64url of its little-endian bytes.
    assert_eq!(id.to_string(), "AAECAwQFBgcICQoLDA0ODw");
}
