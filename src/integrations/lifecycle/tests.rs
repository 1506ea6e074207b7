//! The core's own part of a response: what it tells caches.

use super::*;
use crate::{Key, KeyRing, SessionCodec, SessionConfig};

/// A response as its list of headers.
struct Headers(Vec<(String, String)>);

/// An adapter answering [`Headers`].
struct Adapter(Shared);

impl Answer<Headers> for Adapter {
    type Output = Headers;

    fn shared(&self) -> &Shared {
        &self.0
    }

    fn append(response: &mut Headers, name: String, value: String) -> Result<(), ()> {
        response.0.push((name, value));
        Ok(())
    }

    fn cache_control(response: &Headers) -> impl Iterator<Item = &[u8]> {
        let values = response.0.iter().filter(|(name, _)| name == "cache-control");
        values.map(|(_, value)| value.as_bytes())
    }

    fn set_cache_control(response: &mut Headers, value: &'static str) {
        response.0.retain(|(name, _)| name != "cache-control");
        response.0.push(("cache-control".to_owned(), value.to_owned()));
    }

    fn answer(&self, response: Headers, saved: Result<(), Option<SealError>>) -> Headers {
        assert!(saved.is_ok(), "the session's headers were appended");
        response
    }
}

/// The application's own Cache-Control, the session's headers, what the response says.
type Row =
    (&'static [&'static str], &'static [(&'static str, &'static str)], &'static [&'static str]);

#[test]
fn a_response_carrying_the_session_is_kept_out_of_caches() {
    let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    let adapter = Adapter(Shared::new(codec));
    let cookie = &[("set-cookie", "__Host-session=x; Path=/")];
    let token = &[("x-session-token", "x")];
    let rows: [Row; 9] = [
        (&[], cookie, &["private, no-store"]),
        (&[], token, &["private, no-store"]),
        (&["public, max-age=600"], cookie, &["private, no-store"]),
        (&["private, max-age=60"], token, &["private, no-store"]),
        // Already as strict: left as the application wrote it.
        (&["No-Store"], cookie, &["No-Store"]),
        (&["max-age=0,no-store"], token, &["max-age=0,no-store"]),
        (&["public", "no-store"], cookie, &["public", "no-store"]),
        // No session headers: nothing is added or changed.
        (&["public, max-age=600"], &[], &["public, max-age=600"]),
        (&[], &[], &[]),
    ];
    for (app, session, expected) in rows {
        let own = app.iter().map(|value| ("cache-control".to_owned(), value.to_string()));
        let pairs = session.iter().map(|(name, value)| (name.to_string(), value.to_string()));
        let response = respond(&adapter, Headers(own.collect()), Ok(pairs.collect()));
        let said = Adapter::cache_control(&response).map(|value| str::from_utf8(value));
        let said: Vec<&str> = said.collect::<Result<_, _>>().expect("ASCII");
        assert_eq!(said, expected, "the application's {app:?}, the session's {session:?}");
    }
}
