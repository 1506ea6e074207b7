//! The seal path: the application's session in, a token out. Deciding whether a response must
//! carry the session, purging it, sealing it into a token under the ring's current key, storing
//! it as cookies or a token header, and measuring it before a handler returns. The state here
//! is trusted; what it guards is the budget and the nonce.

use std::time::SystemTime;

use smallvec::SmallVec;
use zeroize::Zeroizing;

use super::SessionCodec;
use super::set_cookie::{CookieLines, SetCookies};
use crate::chunk;
use crate::error::SealError;
use crate::format::base64url;
use crate::format::frame::{self, FrameMeta, SealedLifetime};
use crate::format::msgpack;
use crate::format::{
    HEADER_LEN, Header, MAX_AAD_LEN, MAX_CHUNKS, Mode, NONCE_LEN, SESSION_ID_LEN, associated_data,
};
use crate::keys::{KeyId, KeyRing, RingKey};
use crate::lifetime;
use crate::metrics::Saved;
use crate::random;
use crate::seal;
use crate::session::Session;
use crate::size::SessionSize;
use crate::time::to_unix;

impl SessionCodec {
    /// [`store`](SessionCodec::store) as response headers, `(name, value)` pairs to append
    /// to the response (the adapters' last step): Set-Cookie headers, or the token header.
    ///
    /// # Errors
    ///
    /// As [`store`](SessionCodec::store).
    pub fn store_headers(
        &self,
        session: &mut Session,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, SealError> {
        Ok(match self.store_unwritten(session, now)? {
            None => Vec::new(),
            Some(Unwritten::Cookies(lines)) => {
                let values = self.header_values(&lines);
                values.map(|value| ("set-cookie".to_owned(), value)).collect()
            }
            Some(Unwritten::Token(token)) => vec![(self.config.token_header().to_owned(), token)],
        })
    }

    /// [`store_headers`](SessionCodec::store_headers) reading the time only when the answer
    /// depends on it: a request that neither brought nor made a session never reads the clock.
    pub(crate) fn store_headers_lazy(
        &self,
        session: &mut Session,
        now: impl FnOnce() -> SystemTime,
    ) -> Result<Vec<(String, String)>, SealError> {
        if self.needs_save_untimed(session) == Some(false) {
            crate::metrics::saved(|| Saved::Unchanged);
            return Ok(Vec::new());
        }
        self.store_headers(session, now())
    }

    /// Stores a request's session the way the adapters do: nothing when nothing needs saving,
    /// otherwise Set-Cookie headers, or a new token for a session that came in a token header.
    /// A failure is logged with `tracing` at error level (the caller should answer 500).
    ///
    /// # Errors
    ///
    /// As [`seal`](SessionCodec::seal).
    pub fn store(
        &self,
        session: &mut Session,
        now: SystemTime,
    ) -> Result<Option<Outgoing>, SealError> {
        let stored = self.store_unwritten(session, now)?;
        Ok(stored.map(|stored| match stored {
            Unwritten::Cookies(lines) => Outgoing::Cookies(self.set_cookies(&lines)),
            Unwritten::Token(token) => Outgoing::Token(token),
        }))
    }

    /// [`store`](SessionCodec::store), its Set-Cookie headers not yet written.
    fn store_unwritten(
        &self,
        session: &mut Session,
        now: SystemTime,
    ) -> Result<Option<Unwritten>, SealError> {
        let result = if session.via_token {
            if !self.needs_save(session, now) {
                Ok(None)
            } else if session.purged {
                *session = Session { via_token: true, ..Session::new() };
                Ok(Some(Unwritten::Token(String::new())))
            } else {
                self.seal_token(session, now).map(|token| Some(Unwritten::Token(token)))
            }
        } else {
            self.save_unwritten(session, now).map(|lines| lines.map(Unwritten::Cookies))
        };
        if let Err(error) = &result {
            tracing::error!(cookie = %self.config.name, %error, "session could not be saved");
        }
        crate::metrics::saved(|| self.saved(&result, session));
        result
    }

    /// What [`store_unwritten`](SessionCodec::store_unwritten) did, for the metrics.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    fn saved<'e>(
        &self,
        result: &'e Result<Option<Unwritten>, SealError>,
        session: &Session,
    ) -> Saved<'e> {
        let written = |bytes, chunks| Saved::Written { bytes, chunks, key: session.key_id };
        match result {
            Ok(None) => Saved::Unchanged,
            // Purged: removals only.
            Ok(Some(Unwritten::Token(token))) if token.is_empty() => Saved::Removed,
            Ok(Some(Unwritten::Cookies(lines))) if lines.token.is_empty() => Saved::Removed,
            Ok(Some(Unwritten::Token(token))) => written(token.len(), 1),
            Ok(Some(Unwritten::Cookies(lines))) => {
                written(chunk::header_share(&self.config.name, &lines.lens), lines.lens.len())
            }
            Err(error) => Saved::Failed(error),
        }
    }

    /// Whether a response must carry Set-Cookie headers for this session: it changed, was
    /// renewed or purged, the client holds stale chunks, it was opened under a key that no
    /// longer seals, or its idle window is due for a refresh.
    pub fn needs_save(&self, session: &Session, now: SystemTime) -> bool {
        if let Some(needs) = self.needs_save_untimed(session) {
            return needs;
        }
        let Some(meta) = session.meta else { return false };
        let now = to_unix(now);
        if self.keys.load_at(now).current(now).is_some_and(|key| Some(key.id) != session.key_id) {
            return true;
        }
        // A session's own idle timeout shorter than twice the interval is refreshed at half of
        // it, so an active session never idles out; one without an idle bound needs no refresh.
        let interval = match meta.lifetime {
            SealedLifetime::Idle(idle) => self.config.refresh_interval.as_secs().min(idle / 2),
            SealedLifetime::Fixed => return false,
            SealedLifetime::Configured | SealedLifetime::BrowserSession => {
                self.config.refresh_interval.as_secs()
            }
        };
        now.saturating_sub(meta.last_refresh) >= interval
    }

    /// [`needs_save`](SessionCodec::needs_save) when the answer does not depend on the time;
    /// `None` for an opened session that did not change (is it due for a refresh, or was it
    /// opened under a key that no longer seals?).
    fn needs_save_untimed(&self, session: &Session) -> Option<bool> {
        if session.changed || session.stale_chunks() > 0 {
            return Some(true);
        }
        match session.meta {
            Some(_) => None,
            // A new session that nothing was written to, or a fresh session replacing
            // rejected cookies (which must be removed).
            None => Some(session.client_chunks != 0),
        }
    }

    /// Seals the session if [`needs_save`](SessionCodec::needs_save) says so, and removes every
    /// cookie of a purged session.
    ///
    /// # Errors
    ///
    /// As [`seal`](SessionCodec::seal).
    pub fn save(
        &self,
        session: &mut Session,
        now: SystemTime,
    ) -> Result<Option<SetCookies>, SealError> {
        let saved = self.save_unwritten(session, now)?;
        Ok(saved.map(|lines| self.set_cookies(&lines)))
    }

    /// [`save`](SessionCodec::save), its Set-Cookie headers not yet written.
    fn save_unwritten(
        &self,
        session: &mut Session,
        now: SystemTime,
    ) -> Result<Option<CookieLines>, SealError> {
        if !self.needs_save(session, now) {
            return Ok(None);
        }
        if session.purged || (session.meta.is_none() && session.is_empty() && !session.renew) {
            return Ok(Some(self.purge_unwritten(session)));
        }
        let source = self.config.randomness;
        self.seal_unwritten(session, now, &mut |buf| random::fill(source, buf)).map(Some)
    }

    /// Removal headers for every cookie of this session the client sent (at least the first),
    /// among those a session under this configuration can span: never more removals than the
    /// largest session's cookies. The session is left empty and new.
    #[must_use = "the removal headers must be sent for the browser to forget the session"]
    pub fn purge(&self, session: &mut Session) -> SetCookies {
        self.set_cookies(&self.purge_unwritten(session))
    }

    /// [`purge`](SessionCodec::purge), its Set-Cookie headers not yet written.
    fn purge_unwritten(&self, session: &mut Session) -> CookieLines {
        let removed = session.client_chunks | 1;
        *session = Session::new();
        CookieLines { token: String::new(), lens: Vec::new(), max_age: None, removed }
    }

    /// Seals the session into Set-Cookie headers, whether or not it changed: the token, split
    /// across as many cookies as it needs, and removals for chunks the client holds beyond them.
    /// A new or renewed session gets a fresh id and lifetime; every seal refreshes the idle
    /// window and uses the ring's current key.
    ///
    /// # Errors
    ///
    /// [`SealError::TooLarge`] when the cookies would exceed the budget,
    /// [`SealError::TooManyCookies`] when they would be more than the format allows,
    /// [`SealError::StateTooLarge`] when the state exceeds the maximum state size,
    /// [`SealError::NoActiveKey`] when every key of the ring is pending.
    pub fn seal(&self, session: &mut Session, now: SystemTime) -> Result<SetCookies, SealError> {
        let source = self.config.randomness;
        self.seal_drawing(session, now, &mut |buf| random::fill(source, buf))
    }

    /// [`seal`](SessionCodec::seal) with the nonce and session id drawn from `entropy`. For the
    /// seeded test-vector generator and the fuzz package only, behind the `__testing` feature
    /// (not part of the API): a repeated nonce destroys XAES-256-GCM's security.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn seal_with(
        &self,
        session: &mut Session,
        now: SystemTime,
        entropy: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
    ) -> Result<SetCookies, SealError> {
        self.seal_drawing(session, now, entropy)
    }

    /// [`seal`](SessionCodec::seal) drawing the nonce and session id from `entropy`.
    fn seal_drawing(
        &self,
        session: &mut Session,
        now: SystemTime,
        entropy: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
    ) -> Result<SetCookies, SealError> {
        self.seal_unwritten(session, now, entropy).map(|lines| self.set_cookies(&lines))
    }

    /// [`seal_drawing`](SessionCodec::seal_drawing), its Set-Cookie headers not yet written.
    pub(super) fn seal_unwritten(
        &self,
        session: &mut Session,
        now: SystemTime,
        entropy: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
    ) -> Result<CookieLines, SealError> {
        let now_unix = to_unix(now);
        let ring = self.keys.load_at(now_unix);
        let unsealed = self.frame(&ring, session, now_unix, entropy)?;

        // Lay the token out across cookies before sealing: the chunk count is authenticated.
        let max_age = lifetime::max_age(&unsealed.meta, now_unix, self.config.persistent);
        let attrs_len = self.attributes_len(max_age);
        let name = &self.config.name;
        let budget = self.config.cookie_budget;
        let line = self.config.max_cookie_line;
        let plan = |max| chunk::plan(unsealed.encoded_len, name.len(), attrs_len, line, max);
        let Some(lens) = plan(MAX_CHUNKS) else {
            // Say what it would take without the format's limit on cookies.
            return Err(match plan(usize::MAX) {
                Some(lens) => SealError::TooManyCookies {
                    needed: chunk::header_share(name, &lens),
                    chunks: lens.len(),
                    max: MAX_CHUNKS,
                },
                // Unreachable with a valid configuration (`build` checks it): the first line
                // cannot hold the token's header.
                None => SealError::TooLarge { needed: unsealed.encoded_len, budget, chunks: 1 },
            });
        };
        let needed = chunk::header_share(name, &lens);
        if needed > budget {
            return Err(SealError::TooLarge { needed, budget, chunks: lens.len() });
        }

        let chunks = u8::try_from(lens.len()).expect("at most MAX_CHUNKS chunks");
        let (token, meta, key_id) = self.finish(unsealed, chunks, name)?;
        let written = (1u64 << lens.len()) - 1;
        let removed = session.client_chunks & !written;
        session.client_chunks = written;
        session.commit(meta, key_id, chunks);
        Ok(CookieLines { token, lens, max_age, removed })
    }

    /// Seals the session into one token for a request header (the configured
    /// [`token_header`](crate::SessionConfigBuilder::token_header)), for API clients without a
    /// cookie jar. The client sends it back in that header; [`open_token`] reads it. The token
    /// is bound to the header's name, so it cannot be replayed as a cookie, and is limited by
    /// the same budget as the cookies.
    ///
    /// [`open_token`]: SessionCodec::open_token
    ///
    /// # Errors
    ///
    /// As [`seal`](SessionCodec::seal).
    pub fn seal_token(&self, session: &mut Session, now: SystemTime) -> Result<String, SealError> {
        let source = self.config.randomness;
        let mut entropy = |buf: &mut [u8]| random::fill(source, buf);
        let ring = self.keys.load_at(to_unix(now));
        let unsealed = self.frame(&ring, session, to_unix(now), &mut entropy)?;
        let budget = self.config.cookie_budget;
        if unsealed.encoded_len > budget {
            return Err(SealError::TooLarge { needed: unsealed.encoded_len, budget, chunks: 1 });
        }
        let (token, meta, key_id) = self.finish(unsealed, 1, &self.config.token_aad_name())?;
        session.commit(meta, key_id, 1);
        Ok(token)
    }

    /// Builds the token up to the tag: header placeholder, nonce, frame.
    fn frame<'r>(
        &self,
        ring: &'r KeyRing,
        session: &Session,
        now: u64,
        entropy: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
    ) -> Result<Unsealed<'r>, SealError> {
        let key = ring.current(now).ok_or(SealError::NoActiveKey)?;
        let mode = self.config.mode;
        // Everything this seal needs from the generator in one draw, the session id (a new or
        // renewed session) before the nonce (sealed mode): under the default each draw is a
        // system call, most of what the fork-safe default costs, so a login pays one, not two.
        let id_len = if session.meta.is_none() || session.renew { SESSION_ID_LEN } else { 0 };
        let nonce_len = if mode == Mode::Sealed { NONCE_LEN } else { 0 };
        let mut drawn = [0u8; SESSION_ID_LEN + NONCE_LEN];
        if id_len + nonce_len > 0 {
            entropy(&mut drawn[..id_len + nonce_len])?;
        }
        let (id, nonce) = drawn.split_at(id_len);
        let mut session_id = [0u8; SESSION_ID_LEN];
        session_id[..id_len].copy_from_slice(id);
        let meta = self.next_meta(session, now, session_id);

        let (body, sensitive) = encode_sections(session, &self.config.sensitive_keys);
        let state_size = body.len() + sensitive.as_ref().map_or(0, |s| s.len());
        let max_state = self.config.max_state_size;
        if state_size > max_state {
            return Err(SealError::StateTooLarge { size: state_size, max: max_state });
        }

        let mut token = Vec::with_capacity(HEADER_LEN + mode.envelope_len() + 32 + state_size);
        token.extend_from_slice(&[0; HEADER_LEN]);
        token.extend_from_slice(&nonce[..nonce_len]);
        let frame_start = token.len();
        // The sensitive section is copied last, so no growth of `token` leaves a copy of it
        // behind, and sealing encrypts it in place (signed mode: see SECURITY.md, "Keys").
        let sensitive = sensitive.as_ref().map(|s| s.as_slice());
        frame::encode(&meta, &body, sensitive, self.config.compression(), &mut token);
        let tag_len = mode.envelope_len() - (frame_start - HEADER_LEN);
        let encoded_len = base64_len(token.len() + tag_len);
        Ok(Unsealed { key, meta, token, frame_start, encoded_len })
    }

    /// Writes the header, seals under `name`, and encodes.
    fn finish(
        &self,
        unsealed: Unsealed<'_>,
        chunks: u8,
        name: &str,
    ) -> Result<(String, FrameMeta, KeyId), SealError> {
        let Unsealed { key, meta, mut token, frame_start, encoded_len } = unsealed;
        let mode = self.config.mode;
        let header = Header::new(mode, chunks, key.id.0).to_bytes();
        token[..HEADER_LEN].copy_from_slice(&header);
        let mut aad = [0; MAX_AAD_LEN];
        let aad = associated_data(&header, name, self.config.purpose.as_deref(), &mut aad);
        seal::seal(mode, key, aad, &mut token, frame_start).map_err(|()| SealError::Encrypt)?;
        let encoded = base64url::encode(&token);
        debug_assert_eq!(encoded.len(), encoded_len);
        Ok((encoded, meta, key.id))
    }

    /// How large `session` would be if it were sealed at `now`, against the configured
    /// budget, cookie count and maximum state size: what a handler checks before returning
    /// (see [`SessionSize`]). It compresses the state as sealing would, but encrypts nothing.
    pub fn measure(&self, session: &Session, now: SystemTime) -> SessionSize {
        let now = to_unix(now);
        let meta = self.next_meta(session, now, [0; SESSION_ID_LEN]);
        let (body, sensitive) = encode_sections(session, &self.config.sensitive_keys);
        let state_bytes = body.len() + sensitive.as_ref().map_or(0, |s| s.len());
        // It holds a copy of the sensitive section: sized so that it never grows (a growth
        // would leave an unwiped copy behind), and wiped when dropped.
        let mut framed = Zeroizing::new(Vec::with_capacity(frame::MAX_META_LEN + state_bytes));
        let sensitive = sensitive.as_ref().map(|s| s.as_slice());
        frame::encode(&meta, &body, sensitive, self.config.compression(), &mut framed);
        let encoded_len = base64_len(HEADER_LEN + self.config.mode.envelope_len() + framed.len());
        let budget = self.config.cookie_budget;
        let mut size = if session.via_token {
            SessionSize::new(encoded_len, 1, budget)
        } else {
            let max_age = lifetime::max_age(&meta, now, self.config.persistent);
            let attrs_len = self.attributes_len(max_age);
            let name = &self.config.name;
            let line = self.config.max_cookie_line;
            match chunk::plan(encoded_len, name.len(), attrs_len, line, usize::MAX) {
                Some(lens) => {
                    SessionSize::new(chunk::header_share(name, &lens), lens.len(), budget)
                }
                // The first line cannot hold the token's header (not with a valid
                // configuration).
                None => SessionSize::new(usize::MAX, usize::MAX, budget),
            }
        };
        size.state_bytes = state_bytes;
        size.max_state_size = self.config.max_state_size;
        size
    }

    /// The times, id and lifetime `session` is sealed with at `now`: an opened session keeps
    /// its id and issue time and gets a fresh idle window; a new or renewed one gets
    /// `session_id` and a full lifetime. Either way the end is the configured one, brought
    /// forward by the session's own [`Lifetime`](crate::Lifetime), and never past the issue
    /// plus today's absolute timeout.
    fn next_meta(
        &self,
        session: &Session,
        now: u64,
        session_id: [u8; SESSION_ID_LEN],
    ) -> FrameMeta {
        let absolute = self.config.absolute_timeout.as_secs();
        let (issued_at, end, session_id) = match session.meta {
            // A fixed end the application has since replaced (with another, or another kind of
            // lifetime) goes: the session's end is again its issue plus the absolute timeout.
            Some(meta)
                if !session.renew
                    && meta.lifetime == SealedLifetime::Fixed
                    && session.lifetime.is_some() =>
            {
                (meta.issued_at, meta.issued_at.saturating_add(absolute), meta.session_id)
            }
            Some(meta) if !session.renew => {
                (meta.issued_at, self.configured_end(&meta), meta.session_id)
            }
            _ => (now, now.saturating_add(absolute), session_id),
        };
        let (lifetime, expires_at) = session.lifetime().seal(end, absolute);
        FrameMeta { issued_at, last_refresh: now, expires_at, session_id, lifetime }
    }
}

/// What a response must carry for its session.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "the session is lost unless this is sent"]
#[non_exhaustive]
pub enum Outgoing {
    /// Set-Cookie headers.
    Cookies(SetCookies),
    /// A token for the configured token header; empty when the session was purged (the client
    /// should drop its token).
    Token(String),
}

/// [`Outgoing`] with its Set-Cookie headers not yet written.
enum Unwritten {
    Cookies(CookieLines),
    Token(String),
}

/// A token built up to its tag.
struct Unsealed<'k> {
    key: &'k RingKey,
    meta: FrameMeta,
    token: Vec<u8>,
    frame_start: usize,
    encoded_len: usize,
}

/// Encodes the ordinary and the sensitive values as two MessagePack maps. The sensitive one is
/// wiped when dropped (each map is written into a buffer sized for every value, so it never
/// grows and leaves no copy behind).
fn encode_sections(
    session: &Session,
    sensitive_keys: &[String],
) -> (Vec<u8>, Option<Zeroizing<Vec<u8>>>) {
    // The values are walked once: an opened session's are merged from its buffer and its
    // changes (see `Values::iter`). A value is sensitive if it was inserted as one, or if the
    // configuration names its key (bridges insert everything alike).
    let entries: SmallVec<[(&str, &[u8], bool); 8]> = session
        .values
        .iter()
        .map(|(key, bytes, sensitive)| {
            (key, bytes, sensitive || sensitive_keys.iter().any(|name| name == key))
        })
        .collect();
    let sensitive_count = entries.iter().filter(|&&(_, _, sensitive)| sensitive).count();
    let size: usize = entries.iter().map(|(key, bytes, _)| key.len() + bytes.len() + 3).sum();
    let write = |wanted: bool, count: usize| {
        let mut out = Vec::with_capacity(size + 5);
        msgpack::write_map_len(count, &mut out);
        for &(key, bytes, _) in entries.iter().filter(|&&(_, _, sensitive)| sensitive == wanted) {
            msgpack::write_key(key, &mut out);
            out.extend_from_slice(bytes);
        }
        out
    };
    let body = write(false, entries.len() - sensitive_count);
    let sensitive = (sensitive_count > 0).then(|| Zeroizing::new(write(true, sensitive_count)));
    (body, sensitive)
}

/// Length of the unpadded base64 encoding of `n` bytes.
const fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::Key;
    use crate::config::SessionConfig;

    #[test]
    fn the_sensitive_section_is_wiped_and_never_grows() {
        // (sensitive values, ordinary values): the sensitive map is written into a buffer
        // sized for every value, so the `Zeroizing` that wipes it holds its only copy.
        let cases: [(&[&str], &[&str]); 3] =
            [(&["csrf"], &["user", "cart"]), (&["a", "b"], &[]), (&[], &["user"])];
        for (sensitive, ordinary) in cases {
            let mut session = Session::new();
            for key in sensitive {
                session.insert_sensitive(*key, "x".repeat(300)).unwrap();
            }
            for key in ordinary {
                session.insert(*key, "y".repeat(300)).unwrap();
            }
            let (body, section): (Vec<u8>, Option<Zeroizing<Vec<u8>>>) =
                encode_sections(&session, &[]);
            assert_eq!(section.is_some(), !sensitive.is_empty(), "{sensitive:?}");
            if let Some(section) = section {
                // The capacity it was made with: every key, its value's 303 bytes and 3 more
                // each, and 5 for the map's length. A growth would have changed it.
                let keys = sensitive.iter().chain(ordinary);
                let size: usize = keys.map(|key| key.len() + 303 + 3).sum::<usize>() + 5;
                assert_eq!(section.capacity(), size, "{sensitive:?}: it grew");
                assert!(section.len() < size && body.len() < size, "{sensitive:?}");
            }
        }
    }

    #[test]
    fn a_seal_draws_from_the_generator_once_at_most() {
        // (mode, what happens to the session before the seal, bytes of each draw): the session
        // id comes first, then the nonce, in one draw.
        let cases: [(Mode, &str, &[usize]); 6] = [
            (Mode::Sealed, "new", &[SESSION_ID_LEN + NONCE_LEN]),
            (Mode::Sealed, "resealed", &[NONCE_LEN]),
            (Mode::Sealed, "renewed", &[SESSION_ID_LEN + NONCE_LEN]),
            (Mode::Signed, "new", &[SESSION_ID_LEN]),
            (Mode::Signed, "resealed", &[]),
            (Mode::Signed, "renewed", &[SESSION_ID_LEN]),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (mode, before, expected) in cases {
            let config = SessionConfig::builder("s").mode(mode).build().unwrap();
            let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
            let mut session = Session::new();
            session.insert("user", 7_u32).unwrap();
            if before != "new" {
                let _cookies = codec.seal(&mut session, now).unwrap();
            }
            if before == "renewed" {
                session.renew();
            }
            let mut draws = Vec::new();
            let mut counter = 0u8;
            let mut entropy = |buf: &mut [u8]| {
                draws.push(buf.len());
                buf.iter_mut().for_each(|byte| {
                    counter = counter.wrapping_add(1);
                    *byte = counter;
                });
                Ok(())
            };
            let _cookies = codec.seal_drawing(&mut session, now, &mut entropy).unwrap();
            assert_eq!(draws, expected, "{mode:?}, {before}");
            if before != "resealed" {
                // The id is the draw's first bytes.
                let id: [u8; SESSION_ID_LEN] = std::array::from_fn(|i| i as u8 + 1);
                assert_eq!(session.meta.unwrap().session_id, id, "{mode:?}, {before}");
            }
        }
    }
}
