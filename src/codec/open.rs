//! The open path: a request's Cookie headers or token header in, a [`Session`] out. Everything
//! read here comes from the client and is checked (sizes first, then the clear header, then the
//! tag) before any of it is believed; a failure is a [`Rejection`], never a panic.

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::SystemTime;

use zeroize::Zeroize as _;

use super::SessionCodec;
use crate::chunk::Found;
use crate::error::{RejectReason, Rejection};
use crate::format::base64url;
use crate::format::frame::{self, FrameMeta, SealedLifetime};
use crate::format::msgpack;
use crate::format::{
    FORMAT_VERSION, HEADER_LEN, Header, MAX_AAD_LEN, MAX_CHUNKS, Mode, associated_data,
};
use crate::keys::KeyId;
use crate::seal;
use crate::session::{MAX_KEY_LEN, Session};
use crate::time::to_unix;
use crate::values::{Opened, Slot, Slots, Values};

impl SessionCodec {
    /// Loads a request's session the way the adapters do: from the token header when the
    /// request carries one (`token_header`), otherwise from its Cookie headers. A rejection is
    /// logged as a `tracing` warning with its reason and replaced by a fresh session, which
    /// removes the rejected cookies when it is stored.
    ///
    /// Both are taken as the bytes the server received (see
    /// [`open_headers`](SessionCodec::open_headers)): a token header that is not ASCII is a
    /// rejected token, never a reason to fall back to the cookies.
    pub fn load<'h, H: AsRef<[u8]> + ?Sized + 'h>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'h H>,
        token_header: Option<&[u8]>,
        now: SystemTime,
    ) -> Session {
        let mut session = Session::new();
        let headers = cookie_headers.into_iter().map(AsRef::as_ref);
        self.load_into(headers, token_header, || now, &mut session);
        session
    }

    /// [`load`](SessionCodec::load) into `session`, whatever it held (the adapters load
    /// straight into the handle they give the application). `now` is called only when there
    /// is a session to check: a request without one never reads the clock.
    pub(crate) fn load_into<'h>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'h [u8]>,
        token_header: Option<&[u8]>,
        now: impl FnOnce() -> SystemTime,
        session: &mut Session,
    ) {
        let (opened, via_token) = match token_header {
            Some(token) => (self.open_token_into(token, now, session), true),
            None => (self.open_headers_into(cookie_headers, now, session), false),
        };
        if let Err(rejection) = opened {
            crate::metrics::rejected(rejection.reason());
            tracing::warn!(
                cookie = %self.config.name,
                reason = %rejection.reason(),
                "session rejected; continuing with a fresh session"
            );
            *session = rejection.into_fresh_session();
            session.via_token = via_token;
        } else {
            crate::metrics::loaded(session);
        }
    }

    /// Opens the session from one Cookie request header value (`a=1; b=2`).
    ///
    /// No session cookie gives a new, empty session.
    ///
    /// # Errors
    ///
    /// A [`Rejection`] when the cookies are present but unusable: malformed, forged, under an
    /// unknown key, expired, or too large. Log its reason and continue with
    /// [`Rejection::into_fresh_session`].
    pub fn open(&self, cookie_header: &str, now: SystemTime) -> Result<Session, Rejection> {
        self.open_headers([cookie_header], now)
    }

    /// Opens the session from several Cookie header values (HTTP/2 may split them), as text
    /// or as the bytes the server received (`&str`, `&[u8]`, an `http::HeaderValue`).
    ///
    /// Pass the bytes as they came, without checking them as text first: a header may hold
    /// bytes outside visible ASCII in other cookies (`theme=café`), and only this session's
    /// cookies need to be well-formed.
    ///
    /// # Errors
    ///
    /// As [`open`](SessionCodec::open).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let mut session = Session::new();
    /// session.insert("user", &"ada")?;
    /// let ours = codec.seal(&mut session, SystemTime::now())?.request_header();
    ///
    /// // Another cookie holds a Latin-1 byte: the session still opens.
    /// let header = [b"theme=caf\xe9; ".as_slice(), ours.as_bytes()].concat();
    /// let opened = codec.open_headers([header.as_slice()], SystemTime::now())?;
    /// assert_eq!(opened.get::<String>("user")?.as_deref(), Some("ada"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_headers<'h, H: AsRef<[u8]> + ?Sized + 'h>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'h H>,
        now: SystemTime,
    ) -> Result<Session, Rejection> {
        let mut session = Session::new();
        let headers = cookie_headers.into_iter().map(AsRef::as_ref);
        self.open_headers_into(headers, || now, &mut session).map(|()| session)
    }

    /// [`open_headers`](SessionCodec::open_headers) into `session`, which is left as it was
    /// on a rejection. Opening in place spares the hot path moving the session around; the
    /// time is read only when there is a session cookie to check.
    fn open_headers_into<'h>(
        &self,
        cookie_headers: impl IntoIterator<Item = &'h [u8]>,
        now: impl FnOnce() -> SystemTime,
        session: &mut Session,
    ) -> Result<(), Rejection> {
        // Bound the input before parsing it: a header past the limit is never parsed.
        let max = self.config.max_cookie_header;
        let total = std::cell::Cell::new(0usize);
        let headers = cookie_headers.into_iter().filter(|header| {
            total.set(total.get().saturating_add(header.len()));
            total.get() <= max
        });
        let found = Found::collect(headers, &self.config.name)
            .map_err(|reason| Rejection { reason, seen_chunks: 0 })?;
        // Only chunks a session of ours can span are ever removed: a client naming more
        // (leftovers of another configuration, or planted) must not buy removal headers.
        let seen = found.seen & self.writable;
        if total.get() > max {
            return Err(Rejection {
                reason: RejectReason::TooLarge("Cookie header"),
                seen_chunks: seen,
            });
        }
        if found.chunks.is_empty() {
            *session = Session::new();
            return Ok(());
        }
        let reject = |reason| Rejection { reason, seen_chunks: seen };
        let now = to_unix(now());
        // Path or domain variants of our cookie name may arrive together; try each variant
        // (a bounded few). Any failure moves on to the next: a stale variant from another path
        // (expired, under a retired key, or garbage) that the browser sends first must not
        // shadow the valid session behind it. Once one opens, the rest are tried too, because
        // a second one that authenticates is either an older copy of the same session (the
        // newest wins) or another session planted beside the user's from a sibling subdomain
        // or a deeper path (cookie tossing): the user's session must not lose to it, and we
        // cannot tell which is which, so both are refused.
        let mut first_error = None;
        let mut opened = false;
        for variant in 0..found.variants().max(1) {
            if !opened {
                match self.open_variant(&found, variant, now, session) {
                    Ok(()) => opened = true,
                    Err(reason) => {
                        first_error.get_or_insert(reason);
                    }
                }
                continue;
            }
            let mut other = Session::new();
            if self.open_variant(&found, variant, now, &mut other).is_err() {
                continue;
            }
            let (Some(ours), Some(theirs)) = (session.meta, other.meta) else { continue };
            if ours.session_id != theirs.session_id {
                *session = Session::new();
                return Err(reject(RejectReason::Conflicting));
            }
            if theirs.last_refresh > ours.last_refresh {
                *session = other;
            }
        }
        if opened {
            session.client_chunks = seen;
            return Ok(());
        }
        Err(reject(first_error.unwrap_or(RejectReason::Forged)))
    }

    fn open_variant(
        &self,
        found: &Found<'_>,
        variant: usize,
        now: u64,
        session: &mut Session,
    ) -> Result<(), RejectReason> {
        let first = found.get(0, variant).ok_or(RejectReason::Malformed("missing first chunk"))?;
        let header = self.check_header(first)?;
        if header.chunks == 1 {
            return self.open_parts(&self.config.name, header, &[first], now, session);
        }
        let parts = (0..header.chunks)
            .map(|index| found.get(index, variant))
            .collect::<Option<Vec<_>>>()
            .ok_or(RejectReason::Malformed("missing chunk"))?;
        self.open_parts(&self.config.name, header, &parts, now, session)
    }

    /// Opens a session from a token carried in a request header (see
    /// [`seal_token`](SessionCodec::seal_token)) rather than in cookies.
    ///
    /// # Errors
    ///
    /// As [`open`](SessionCodec::open). A cookie's value is not accepted as a token, nor a
    /// token as a cookie: the two are bound to different names.
    pub fn open_token(&self, token: &str, now: SystemTime) -> Result<Session, Rejection> {
        let mut session = Session::new();
        self.open_token_into(token.as_bytes(), || now, &mut session).map(|()| session)
    }

    /// [`open_token`](SessionCodec::open_token) into `session`, left as it was on a rejection.
    /// The time is read only when there is a token to check.
    fn open_token_into(
        &self,
        token: &[u8],
        now: impl FnOnce() -> SystemTime,
        session: &mut Session,
    ) -> Result<(), Rejection> {
        let reject = |reason| Rejection { reason, seen_chunks: 0 };
        // A token is base64url: bytes that are not even UTF-8 are a malformed token (the
        // header still says the client carries its session in it, not in cookies).
        let token = std::str::from_utf8(token)
            .map_err(|_| reject(RejectReason::Malformed("invalid base64")))?
            .trim();
        if token.is_empty() {
            // A client starts (or, after a purge, restarts) a token session with an empty
            // header: its session goes back as a token too, never as cookies it cannot keep.
            *session = Session { via_token: true, ..Session::new() };
            return Ok(());
        }
        if token.len() > self.config.cookie_budget {
            return Err(reject(RejectReason::TooLarge("token")));
        }
        let header = self.check_header(token).map_err(reject)?;
        if header.chunks != 1 {
            return Err(reject(RejectReason::Malformed("invalid chunk count")));
        }
        let name = self.config.token_aad_name();
        self.open_parts(&name, header, &[token], to_unix(now()), session).map_err(reject)?;
        session.via_token = true;
        Ok(())
    }

    /// Reads and checks the clear header from the first 8 base64 characters of a token.
    fn check_header(&self, first: &str) -> Result<Header, RejectReason> {
        let prefix = first.get(..8).ok_or(RejectReason::Malformed("short token"))?;
        let mut header_bytes = [0u8; HEADER_LEN];
        base64url::decode_exact(prefix.as_bytes(), &mut header_bytes)
            .ok_or(RejectReason::Malformed("invalid base64"))?;
        let header = Header::parse(&header_bytes).ok_or(RejectReason::Malformed("short token"))?;
        if header.version != FORMAT_VERSION {
            return Err(RejectReason::UnsupportedVersion(header.version));
        }
        if Mode::from_nibble(header.mode_nibble) != Some(self.config.mode) {
            return Err(RejectReason::WrongMode);
        }
        if header.chunks == 0 || usize::from(header.chunks) > MAX_CHUNKS {
            return Err(RejectReason::Malformed("invalid chunk count"));
        }
        Ok(header)
    }

    /// Joins, authenticates and decodes a token whose header has been checked, into
    /// `session` (a fresh session with the token's values, times and key). On an error
    /// `session` is left as it was.
    fn open_parts(
        &self,
        name: &str,
        header: Header,
        parts: &[&str],
        now: u64,
        session: &mut Session,
    ) -> Result<(), RejectReason> {
        let key_id = KeyId(header.key_id);
        let ring = self.keys.load_at(now);
        let key = ring.get(key_id).ok_or(RejectReason::UnknownKey(key_id))?;
        // Check the length before copying anything.
        let encoded_len: usize = parts.iter().map(|part| part.len()).sum();
        if encoded_len > self.config.cookie_budget {
            return Err(RejectReason::TooLarge("token"));
        }
        // One chunk (the usual case) decodes in place; more are joined first.
        let joined;
        let encoded = match parts {
            [part] => part.as_bytes(),
            _ => {
                joined = parts.concat();
                joined.as_bytes()
            }
        };
        let mut aad = [0; MAX_AAD_LEN];
        let aad =
            associated_data(&header.to_bytes(), name, self.config.purpose.as_deref(), &mut aad);
        with_token_buffer(|token| {
            base64url::decode_into(encoded, token)
                .ok_or(RejectReason::Malformed("invalid base64"))?;
            if token.len() < HEADER_LEN + self.config.mode.envelope_len() {
                return Err(RejectReason::Malformed("short token"));
            }
            let frame = seal::open(self.config.mode, key, aad, &mut token[HEADER_LEN..])
                .ok_or(RejectReason::Forged)?;
            // Authenticated from here on.
            let (values, meta) = self.decode_frame(frame, now)?;
            *session = Session::new();
            session.values = values;
            session.meta = Some(meta);
            // A fixed end may have been brought forward after a copy of the cookie was taken:
            // a logout revokes until the latest end such a copy can have.
            if meta.lifetime == SealedLifetime::Fixed {
                let absolute = self.config.absolute_timeout.as_secs();
                session.copies_end = Some(meta.issued_at.saturating_add(absolute));
            }
            session.key_id = Some(key_id);
            session.chunk_count = header.chunks;
            Ok(())
        })
    }

    /// Checks the times of an authenticated frame and indexes its values, within the limits.
    fn decode_frame(&self, frame: &[u8], now: u64) -> Result<(Values, FrameMeta), RejectReason> {
        let (meta, sections) = frame::decode_meta(frame)?;
        let skew = self.config.clock_skew.as_secs();
        if meta.issued_at > now.saturating_add(skew) {
            return Err(RejectReason::IssuedInFuture);
        }
        // The session ends at its sealed end or at today's absolute timeout from its issue
        // time, whichever comes first: a timeout shortened after an incident reaches sessions
        // sealed before it (the idle window below already counts from today's idle timeout),
        // and the next seal carries the shorter end.
        if now > self.configured_end(&meta).saturating_add(skew) {
            return Err(RejectReason::AbsoluteExpired);
        }
        // The session's own idle timeout, sealed with it, replaces the configured one (it may
        // be longer: "remember me"); a fixed end has none. The absolute check above bounds both.
        if let Some(idle) = meta.lifetime.idle_timeout(self.config.idle_timeout.as_secs()) {
            let idle_end = meta.last_refresh.saturating_add(idle);
            if now > idle_end.saturating_add(skew) {
                return Err(RejectReason::IdleExpired);
            }
        }

        let max_state = self.config.max_state_size;
        let sensitive = sections.sensitive();
        if sensitive.map_or(0, <[u8]>::len) > max_state {
            return Err(RejectReason::TooLarge("state"));
        }
        let body = sections.body(max_state)?;
        let state_len = body.len() + sensitive.map_or(0, <[u8]>::len);
        let slots = match index_sections(&body, sensitive, state_len, max_state) {
            Ok(slots) => slots,
            Err(reason) => {
                if let Cow::Owned(mut bytes) = body {
                    bytes.zeroize();
                }
                return Err(reason);
            }
        };
        // A decompressed body was given room for the sensitive section: no reallocation
        // leaves an unwiped copy of it behind.
        let mut bytes = match body {
            Cow::Owned(bytes) => bytes,
            Cow::Borrowed(body) => {
                let mut bytes = Vec::with_capacity(state_len);
                bytes.extend_from_slice(body);
                bytes
            }
        };
        bytes.extend_from_slice(sensitive.unwrap_or_default());
        // One key space for both sections: a key in both was not written by us. (A refused
        // buffer is wiped as it drops.)
        let values = Opened::new(bytes, slots).ok_or(RejectReason::Malformed("invalid state"))?;
        Ok((Values::opened(values), meta))
    }

    /// The post-authentication half of `open` on a frame given directly, for fuzzing the
    /// decompression and MessagePack indexing with arbitrary bytes. Not part of the API: real
    /// frames only reach this code after their tag has been checked. Behind the `__testing`
    /// feature, which only the fuzz package and this crate's own tests enable.
    #[cfg(feature = "__testing")]
    #[doc(hidden)]
    pub fn __fuzz_decode_frame(
        &self,
        frame: &[u8],
        now: SystemTime,
    ) -> Result<Session, RejectReason> {
        self.decode_frame(frame, to_unix(now)).map(|(values, meta)| {
            let mut session = Session { values, ..Session::new() };
            session.meta = Some(meta);
            session
        })
    }
}

/// Where each value of a frame's sections lies in one buffer holding the body, then the
/// sensitive section: nothing is copied until every entry has been read and checked.
fn index_sections(
    body: &[u8],
    sensitive: Option<&[u8]>,
    state_len: usize,
    max_state: usize,
) -> Result<Slots, RejectReason> {
    // An uncompressed body is not bounded by decompression: check the whole state.
    if state_len > max_state {
        return Err(RejectReason::TooLarge("state"));
    }
    let invalid = RejectReason::Malformed("invalid state");
    let mut slots = Slots::new();
    for (start, section, sensitive) in [(0, Some(body), false), (body.len(), sensitive, true)] {
        let Some(section) = section else { continue };
        for entry in msgpack::map_entries(section).ok_or(invalid)? {
            let (key, value) = entry.ok_or(invalid)?;
            if key.len() > MAX_KEY_LEN {
                return Err(invalid);
            }
            let key = start + key.start..start + key.end;
            let value = start + value.start..start + value.end;
            slots.push(Slot::new(key, value, sensitive).ok_or(invalid)?);
        }
    }
    Ok(slots)
}

thread_local! {
    /// The buffer this thread decodes tokens into, so that opening allocates nothing for the
    /// token itself. It is wiped after every use: it held a decrypted state.
    static TOKEN_BUFFER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an empty buffer (this thread's, or a new one when that one is in use) and
/// wipes what `f` left in it.
fn with_token_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut f = Some(f);
    let mut run = |buffer: &mut Vec<u8>| {
        let f = f.take()?;
        let result = f(buffer);
        buffer.as_mut_slice().zeroize();
        buffer.clear();
        Some(result)
    };
    let shared = TOKEN_BUFFER
        .try_with(|cell| cell.try_borrow_mut().ok().and_then(|mut buffer| run(&mut buffer)))
        .ok()
        .flatten();
    match shared {
        Some(result) => result,
        // Reentered, or the thread is exiting: a buffer of its own.
        None => run(&mut Vec::new()).expect("f runs once, and it has not run"),
    }
}
