//! The framework-free pipeline: Cookie header in, [`Session`] out; [`Session`] in, Set-Cookie
//! headers out.
// Without the `__testing` feature the two hidden entry points do not exist (checked by these
// doctests, run by `cargo test --doc` without features; the control shows the setup compiles).
#![cfg_attr(
    not(feature = "__testing"),
    doc = r#"
```
# use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
codec.seal(&mut Session::new(), std::time::SystemTime::now()).ok();
```

```compile_fail
# use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
codec.seal_with(&mut Session::new(), std::time::SystemTime::now(), &mut |_| Ok(())).ok();
```

```compile_fail
# use sealed_session::{Key, KeyRing, SessionCodec, SessionConfig};
let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
codec.__fuzz_decode_frame(&[], std::time::SystemTime::now()).ok();
```
"#
)]

use std::borrow::Cow;
use std::cell::RefCell;
use std::time::SystemTime;

use cookie::Cookie;
use smallvec::SmallVec;
use zeroize::Zeroize as _;

use crate::chunk::{self, Found};
use crate::config::SessionConfig;
use crate::error::{RejectReason, Rejection, SealError};
use crate::format::base64url;
use crate::format::frame::{self, FrameMeta};
use crate::format::msgpack;
use crate::format::{
    FORMAT_VERSION, HEADER_LEN, Header, MAX_AAD_LEN, MAX_CHUNKS, Mode, NONCE_LEN, SESSION_ID_LEN,
    associated_data,
};
use crate::keys::{KeyId, KeyRing, RingKey, SharedKeyRing};
use crate::random;
use crate::seal;
use crate::session::{MAX_KEY_LEN, Session};
use crate::size::SessionSize;
use crate::time::to_unix;
use crate::values::{Opened, Slot, Slots, Values};

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

/// Seals sessions into cookies and opens them back, under one configuration and key ring.
///
/// `open` runs on every request; `save` (or `seal`) on responses whose session changed or needs
/// a refresh. Both take the time as an argument, so tests control the clock.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
///
/// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
/// let now = SystemTime::now();
///
/// // A response: seal the session into Set-Cookie headers.
/// let mut session = Session::new();
/// session.insert("user_id", &42u64)?;
/// let set_cookies = codec.seal(&mut session, now)?;
///
/// // The next request: the browser sends the cookies back.
/// let cookie_header = set_cookies.request_header();
/// let opened = codec.open(&cookie_header, now)?;
/// assert_eq!(opened.get::<u64>("user_id")?, Some(42));
/// assert_eq!(opened.id(), session.id());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct SessionCodec {
    config: SessionConfig,
    keys: SharedKeyRing,
    /// Bit `i` is set when a session sealed under this configuration can span chunk `i`: the
    /// only chunks a response ever removes (see [`SessionCodec::writable_chunks`]).
    writable: u64,
    /// The attributes every Set-Cookie line of a chunk carries but `Max-Age` (`; HttpOnly;
    /// SameSite=Lax; ...`), as the `cookie` crate writes them: written once here, so a seal
    /// writes its lines without building and formatting a `Cookie` each time.
    attributes: Box<str>,
}

impl SessionCodec {
    /// A codec for `config`, sealing and opening with `keys`.
    pub fn new(config: SessionConfig, keys: impl Into<SharedKeyRing>) -> SessionCodec {
        let mut codec =
            SessionCodec { config, keys: keys.into(), writable: 1, attributes: Box::default() };
        // `name=value` then the attributes: the cookie crate writes `Max-Age` last (there is
        // no `Expires`), so a line with one is these attributes and then it.
        let empty = codec.template("", "", None).to_string();
        codec.attributes = empty.strip_prefix('=').unwrap_or(&empty).into();
        codec.writable = chunk::mask(codec.writable_chunks());
        codec
    }

    /// The most chunks a session sealed under this configuration can span. Removal headers
    /// are sent only for chunks below it that the client sent: a request naming `NAME` to
    /// `NAME.31` must not buy 32 removal lines (enough to pass a proxy's 4 KB response header
    /// buffer), and no legitimate session ever had more chunks than this.
    ///
    /// Every chunk but the last fills its Set-Cookie line, and so takes `line - attrs + 3`
    /// bytes of the budget (its `name=value; `); the last takes at least its name and 4 bytes.
    /// The attributes are counted at their longest (`Max-Age` of 19 digits), for a bound that
    /// holds for every seal.
    fn writable_chunks(&self) -> usize {
        let config = &self.config;
        let longest_max_age = config.persistent.then_some(u64::MAX);
        let attrs_len = self.attributes_len(longest_max_age);
        let full_chunk = (config.max_cookie_line + 3).saturating_sub(attrs_len).max(1);
        let after_first = config.cookie_budget.saturating_sub(config.name.len() + 4);
        (1 + after_first / full_chunk).min(MAX_CHUNKS)
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The key ring.
    pub fn keys(&self) -> &SharedKeyRing {
        &self.keys
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
        // (a bounded few) until one opens. Any failure moves on to the next: a stale variant
        // from another path (expired, under a retired key, or garbage) that the browser sends
        // first must not shadow the valid session behind it.
        let mut first_error = None;
        for variant in 0..found.variants().max(1) {
            match self.open_variant(&found, variant, now, session) {
                Ok(()) => {
                    session.client_chunks = seen;
                    return Ok(());
                }
                Err(reason) => {
                    first_error.get_or_insert(reason);
                }
            }
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
        let ring = self.keys.load();
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
        let aad = associated_data(&header.to_bytes(), name, &mut aad);
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
            session.key_id = Some(key_id);
            session.chunk_count = header.chunks;
            Ok(())
        })
    }

    /// When a session sealed with `meta` ends under today's configuration: its sealed end, or
    /// its issue time plus today's absolute timeout if that comes first.
    fn configured_end(&self, meta: &FrameMeta) -> u64 {
        let configured = meta.issued_at.saturating_add(self.config.absolute_timeout.as_secs());
        meta.expires_at.min(configured)
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
        // and the next seal carries the shorter end (`frame`).
        if now > self.configured_end(&meta).saturating_add(skew) {
            return Err(RejectReason::AbsoluteExpired);
        }
        let idle_end = meta.last_refresh.saturating_add(self.config.idle_timeout.as_secs());
        if now > idle_end.saturating_add(skew) {
            return Err(RejectReason::IdleExpired);
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

    /// Whether a response must carry Set-Cookie headers for this session: it changed, was
    /// renewed or purged, the client holds stale chunks, it was opened under a key that no
    /// longer seals, or its idle window is due for a refresh.
    pub fn needs_save(&self, session: &Session, now: SystemTime) -> bool {
        if let Some(needs) = self.needs_save_untimed(session) {
            return needs;
        }
        let Some(meta) = session.meta else { return false };
        let now = to_unix(now);
        if self.keys.load().current(now).is_some_and(|key| Some(key.id) != session.key_id) {
            return true;
        }
        now.saturating_sub(meta.last_refresh) >= self.config.refresh_interval.as_secs()
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
    fn seal_unwritten(
        &self,
        session: &mut Session,
        now: SystemTime,
        entropy: &mut dyn FnMut(&mut [u8]) -> Result<(), SealError>,
    ) -> Result<CookieLines, SealError> {
        let now_unix = to_unix(now);
        let ring = self.keys.load();
        let unsealed = self.frame(&ring, session, now_unix, entropy)?;

        // Lay the token out across cookies before sealing: the chunk count is authenticated.
        let max_age =
            self.config.persistent.then(|| unsealed.meta.expires_at.saturating_sub(now_unix));
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
                // Unreachable with a valid configuration: no value fits on a line.
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

    /// `lines` as cookies.
    fn set_cookies(&self, lines: &CookieLines) -> SetCookies {
        let name = &self.config.name;
        let chunks = lines
            .chunks()
            .map(|(i, part)| self.template(&chunk::chunk_name(name, i), part, lines.max_age));
        SetCookies(chunks.chain(lines.removals().map(|i| self.removal(i))).collect())
    }

    /// `lines` as Set-Cookie header values: [`SetCookies::header_values`] of
    /// [`set_cookies`](SessionCodec::set_cookies), without building or formatting a cookie
    /// for a chunk (removals are rare, and keep the cookie crate's `Expires` date).
    fn header_values(&self, lines: &CookieLines) -> impl Iterator<Item = String> {
        let chunks = lines.chunks().map(|(i, part)| self.chunk_line(i, part, lines.max_age));
        chunks.chain(lines.removals().map(|i| self.removal(i).to_string()))
    }

    /// The Set-Cookie header value of chunk `index` holding `part`: what
    /// [`template`](SessionCodec::template) would write for it.
    fn chunk_line(&self, index: usize, part: &str, max_age: Option<u64>) -> String {
        use std::fmt::Write as _;
        let name = &self.config.name;
        // The longest suffix is `.31`; the attributes' length counts the `=`.
        let len = name.len() + 3 + part.len() + self.attributes_len(max_age);
        let mut line = String::with_capacity(len);
        line.push_str(name);
        if index > 0 {
            write!(line, ".{index}").expect("writing to a String cannot fail");
        }
        line.push('=');
        line.push_str(part);
        line.push_str(&self.attributes);
        if let Some(secs) = max_age {
            write!(line, "; Max-Age={}", max_age_secs(secs))
                .expect("writing to a String cannot fail");
        }
        line
    }

    /// The length of a chunk's attributes with its `=`: the line's length but its name and value.
    fn attributes_len(&self, max_age: Option<u64>) -> usize {
        let max_age_len = max_age.map_or(0, |secs| {
            let secs = max_age_secs(secs);
            "; Max-Age=".len() + secs.checked_ilog10().map_or(1, |digits| digits as usize + 1)
        });
        1 + self.attributes.len() + max_age_len
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
            tracing::warn!(
                cookie = %self.config.name,
                reason = %rejection.reason(),
                "session rejected; continuing with a fresh session"
            );
            *session = rejection.into_fresh_session();
            session.via_token = via_token;
        }
    }

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
        result
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
        let ring = self.keys.load();
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
        let meta = match session.meta {
            Some(meta) if !session.renew => {
                FrameMeta { last_refresh: now, expires_at: self.configured_end(&meta), ..meta }
            }
            _ => {
                let mut session_id = [0u8; SESSION_ID_LEN];
                entropy(&mut session_id)?;
                FrameMeta {
                    issued_at: now,
                    last_refresh: now,
                    expires_at: now.saturating_add(self.config.absolute_timeout.as_secs()),
                    session_id,
                }
            }
        };

        let (body, sensitive) = encode_sections(session);
        let state_size = body.len() + sensitive.as_ref().map_or(0, Vec::len);
        let max_state = self.config.max_state_size;
        if state_size > max_state {
            return Err(SealError::StateTooLarge { size: state_size, max: max_state });
        }

        let mode = self.config.mode;
        let mut token = Vec::with_capacity(HEADER_LEN + mode.envelope_len() + 32 + state_size);
        token.extend_from_slice(&[0; HEADER_LEN]);
        if mode == Mode::Sealed {
            let mut nonce = [0u8; NONCE_LEN];
            entropy(&mut nonce)?;
            token.extend_from_slice(&nonce);
        }
        let frame_start = token.len();
        frame::encode(&meta, &body, sensitive.as_deref(), self.config.compression(), &mut token);
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
        let aad = associated_data(&header, name, &mut aad);
        seal::seal(mode, key, aad, &mut token, frame_start).map_err(|()| SealError::Encrypt)?;
        let encoded = base64url::encode(&token);
        debug_assert_eq!(encoded.len(), encoded_len);
        Ok((encoded, meta, key.id))
    }

    /// A cookie with this configuration's attributes.
    fn template(&self, name: &str, value: &str, max_age: Option<u64>) -> Cookie<'static> {
        let config = &self.config;
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path(config.path.clone())
            .secure(config.secure)
            .http_only(config.http_only)
            .same_site(config.same_site);
        if let Some(domain) = &config.domain {
            cookie = cookie.domain(domain.clone());
        }
        if let Some(secs) = max_age {
            cookie = cookie.max_age(cookie::time::Duration::seconds(max_age_secs(secs)));
        }
        cookie.build()
    }

    /// The header that deletes chunk `index` (same name, path and domain, `Max-Age=0`).
    fn removal(&self, index: usize) -> Cookie<'static> {
        let mut cookie = self.template(&chunk::chunk_name(&self.config.name, index), "", None);
        cookie.make_removal();
        cookie
    }
}

impl SessionCodec {
    /// How large `session` would be if it were sealed at `now`, against the configured
    /// budget, cookie count and maximum state size: what a handler checks before returning
    /// (see [`SessionSize`]). It compresses the state as sealing would, but encrypts nothing.
    pub fn measure(&self, session: &Session, now: SystemTime) -> SessionSize {
        let now = to_unix(now);
        let meta = match session.meta {
            Some(meta) if !session.renew => {
                FrameMeta { last_refresh: now, expires_at: self.configured_end(&meta), ..meta }
            }
            _ => FrameMeta {
                issued_at: now,
                last_refresh: now,
                expires_at: now.saturating_add(self.config.absolute_timeout.as_secs()),
                session_id: [0; SESSION_ID_LEN],
            },
        };
        let (body, sensitive) = encode_sections(session);
        let state_bytes = body.len() + sensitive.as_ref().map_or(0, Vec::len);
        let mut framed = Vec::new();
        frame::encode(&meta, &body, sensitive.as_deref(), self.config.compression(), &mut framed);
        let encoded_len = base64_len(HEADER_LEN + self.config.mode.envelope_len() + framed.len());
        let budget = self.config.cookie_budget;
        let mut size = if session.via_token {
            SessionSize::new(encoded_len, 1, budget)
        } else {
            let max_age = self.config.persistent.then(|| meta.expires_at.saturating_sub(now));
            let attrs_len = self.attributes_len(max_age);
            let name = &self.config.name;
            let line = self.config.max_cookie_line;
            match chunk::plan(encoded_len, name.len(), attrs_len, line, usize::MAX) {
                Some(lens) => {
                    SessionSize::new(chunk::header_share(name, &lens), lens.len(), budget)
                }
                // No value fits on a line (not with a valid configuration).
                None => SessionSize::new(usize::MAX, usize::MAX, budget),
            }
        };
        size.state_bytes = state_bytes;
        size.max_state_size = self.config.max_state_size;
        size
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

/// A response's Set-Cookie headers before they are written: the chunks of a sealed token (none
/// for a purge), then removals. They become [`Cookie`]s for [`SetCookies`], or header values
/// straight away for the adapters, which never need the cookies.
struct CookieLines {
    token: String,
    /// The length of each chunk's part of `token`.
    lens: Vec<usize>,
    max_age: Option<u64>,
    /// Bit `i` is set when chunk `i` is to be removed.
    removed: u64,
}

impl CookieLines {
    /// Each chunk's index and value.
    fn chunks(&self) -> impl Iterator<Item = (usize, &str)> {
        let mut rest = self.token.as_str();
        self.lens.iter().enumerate().map(move |(i, &len)| {
            let (part, tail) = rest.split_at(len);
            rest = tail;
            (i, part)
        })
    }

    /// The indexes of the chunks to remove.
    fn removals(&self) -> impl Iterator<Item = usize> {
        let removed = self.removed;
        (0..MAX_CHUNKS).filter(move |i| removed & (1 << i) != 0)
    }
}

/// A `Max-Age` in seconds as the cookie crate takes it.
fn max_age_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A token built up to its tag.
struct Unsealed<'k> {
    key: &'k RingKey,
    meta: FrameMeta,
    token: Vec<u8>,
    frame_start: usize,
    encoded_len: usize,
}

/// Encodes the ordinary and the sensitive values as two MessagePack maps.
fn encode_sections(session: &Session) -> (Vec<u8>, Option<Vec<u8>>) {
    // The values are walked once: an opened session's are merged from its buffer and its
    // changes (see `Values::iter`).
    let entries: SmallVec<[(&str, &[u8], bool); 8]> = session.values.iter().collect();
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
    let sensitive = (sensitive_count > 0).then(|| write(true, sensitive_count));
    (body, sensitive)
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

/// Length of the unpadded base64 encoding of `n` bytes.
const fn base64_len(n: usize) -> usize {
    (n * 4).div_ceil(3)
}

/// The Set-Cookie headers a response must carry for a session.
///
/// Send every one of them: together they hold the session, and the removals among them delete
/// chunks the browser no longer needs.
#[derive(Debug, Clone, PartialEq)]
#[must_use = "the session is lost unless these Set-Cookie headers are sent"]
pub struct SetCookies(Vec<Cookie<'static>>);

impl SetCookies {
    /// The cookies, in order: the session's chunks, then removals.
    pub fn cookies(&self) -> &[Cookie<'static>] {
        &self.0
    }

    /// Each cookie as a Set-Cookie header value.
    pub fn header_values(&self) -> impl Iterator<Item = String> + '_ {
        self.0.iter().map(|cookie| cookie.to_string())
    }

    /// How many Set-Cookie headers there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The Cookie request header a browser would send back after storing these cookies (the
    /// non-removed ones, as `name=value` pairs joined by `; `). Handy for tests and tools.
    pub fn request_header(&self) -> String {
        let pairs = self.0.iter().filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO));
        pairs.map(|c| format!("{}={}", c.name(), c.value())).collect::<Vec<_>>().join("; ")
    }

    /// The bytes these cookies take in a Cookie request header, as the budget counts them.
    pub fn request_header_share(&self) -> usize {
        let pairs = self.0.iter().filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO));
        pairs.map(|c| c.name().len() + 1 + c.value().len() + 2).sum()
    }
}

impl IntoIterator for SetCookies {
    type Item = Cookie<'static>;
    type IntoIter = std::vec::IntoIter<Cookie<'static>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use cookie::SameSite;

    use super::*;
    use crate::Key;

    #[test]
    fn chunk_lines_are_what_the_cookie_crate_writes() {
        // (configuration, state bytes, chunks): attributes on and off, a domain and a path,
        // Max-Age, and states that take several chunks.
        let builder = || SessionConfig::builder("s");
        let configs = [
            (SessionConfig::default(), 100, 1),
            (builder().persistent(true).build().unwrap(), 100, 1),
            (
                builder()
                    .cookie_domain("example.com")
                    .cookie_path("/app")
                    .cookie_http_only(false)
                    .cookie_same_site(SameSite::Strict)
                    .persistent(true)
                    .absolute_timeout(Duration::from_secs(9))
                    .max_cookie_line(512)
                    .build()
                    .unwrap(),
                1000,
                4,
            ),
            (
                builder()
                    .cookie_secure(false)
                    .cookie_same_site(SameSite::Lax)
                    .max_cookie_line(600)
                    .build()
                    .unwrap(),
                1000,
                4,
            ),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        for (config, state_len, chunks) in configs {
            let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
            let mut session = Session::new();
            // Incompressible bytes, so the token takes the chunks its length says.
            let mut seed = 1u64;
            let noise: Vec<u8> = (0..state_len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    (seed >> 56) as u8
                })
                .collect();
            session.insert("noise", noise).unwrap();
            // Stale chunks the response removes.
            session.client_chunks = 1 << 9 | 1 << 20;
            let mut entropy = |buf: &mut [u8]| {
                buf.fill(7);
                Ok(())
            };
            let lines = codec.seal_unwritten(&mut session, now, &mut entropy).unwrap();
            let expected: Vec<String> = codec.set_cookies(&lines).header_values().collect();
            assert_eq!(lines.lens.len(), chunks);
            assert_eq!(expected.len(), chunks + 2, "the chunks, then two removals");
            assert_eq!(codec.header_values(&lines).collect::<Vec<_>>(), expected);
            for max_age in [None, Some(0), Some(9), Some(10), Some(i64::MAX as u64), Some(u64::MAX)]
            {
                let written = codec.template("", "", max_age).to_string();
                assert_eq!(codec.attributes_len(max_age), written.len(), "{written}");
            }
        }
    }
}
