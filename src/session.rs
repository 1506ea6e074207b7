//! The session an application reads and writes.

use std::fmt;
use std::time::SystemTime;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Rejected, ValueError};
use crate::format::SESSION_ID_LEN;
use crate::format::frame::FrameMeta;
use crate::format::msgpack;
use crate::keys::KeyId;
use crate::lifetime::Lifetime;
use crate::time::from_unix;
use crate::values::{Entry, Values};

/// The longest key a session accepts, in bytes.
pub const MAX_KEY_LEN: usize = 255;

/// The session key the CSRF token is stored under (see
/// [`Session::csrf_token`](Session::csrf_token)). It lives here, with the session's values,
/// because [`Session::renew`] drops it: `csrf.rs` builds on the session, never the reverse.
pub const CSRF_KEY: &str = "_csrf";

/// A session's random 128-bit id. It changes on [`Session::renew`]; use it in logs and for
/// revocation, never as a secret.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub [u8; SESSION_ID_LEN]);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({self})")
    }
}

/// A session: typed values stored as MessagePack, plus the id and times sealed with them.
///
/// Values are kept as their MessagePack bytes and decoded only when read, so opening a session
/// costs no deserialization of values the request does not touch. An opened session holds its
/// decrypted values in one buffer, wiped when the session is dropped; changes are kept beside
/// it, so changing one value copies none of the others.
///
/// # Examples
///
/// ```
/// use sealed_session::Session;
///
/// let mut session = Session::new();
/// session.insert("user_id", 42u64)?;
/// session.insert("cart", vec!["apple", "pear"])?;
/// session.insert_sensitive("oauth_state", "Zm9vYmFy")?;
///
/// assert_eq!(session.get::<u64>("user_id")?, Some(42));
/// assert_eq!(session.get::<Vec<String>>("cart")?.unwrap().len(), 2);
/// assert_eq!(session.get::<u64>("missing")?, None);
/// assert_eq!(session.get_or_default::<u64>("visits")?, 0);
///
/// // `update` reads (or defaults), changes and stores in one call.
/// let visits = session.update("visits", |n: &mut u64| { *n += 1; *n })?;
/// assert_eq!(visits, 1);
///
/// // `remove` gives the old value back, typed; `remove_raw` for its bytes (or just whether it
/// // was there).
/// assert_eq!(session.remove::<Vec<String>>("cart")?, Some(vec!["apple".into(), "pear".into()]));
/// assert!(session.remove_raw("user_id").is_some());
/// assert!(session.remove_raw("user_id").is_none());
/// # Ok::<(), sealed_session::ValueError>(())
/// ```
#[derive(Clone, Default)]
pub struct Session {
    pub(crate) values: Values,
    /// The id and times of the token this session was opened from (or last sealed to).
    pub(crate) meta: Option<FrameMeta>,
    /// The key the session was opened with or last sealed under.
    pub(crate) key_id: Option<KeyId>,
    /// Bit `i` is set when the client holds chunk `i` of this session's cookie name.
    pub(crate) client_chunks: u64,
    /// How many chunks the opened token had; chunks the client holds beyond it are stale.
    pub(crate) chunk_count: u8,
    pub(crate) changed: bool,
    pub(crate) renew: bool,
    pub(crate) purged: bool,
    /// The session came in a token header rather than in cookies, and goes back the same way.
    pub(crate) via_token: bool,
    /// The id and times of the session a `purge` ended, for revoking it.
    pub(crate) ended: Option<FrameMeta>,
    /// Why the client's cookies were not accepted, when this session replaced them.
    pub(crate) rejected: Option<Rejected>,
    /// The values of the session a `purge` ended: revoking it needs its subject and lineage.
    pub(crate) ended_values: Values,
    /// The lifetime the application set during this request; `None`: the one sealed in
    /// `meta` (see [`Session::lifetime`]).
    pub(crate) lifetime: Option<Lifetime>,
    /// The latest absolute end a copy of the client's cookies may have, when it can be later
    /// than `meta`'s: set on open for a session whose sealed end is a fixed one, which may
    /// have been brought forward after a copy was taken (see [`Session::ended`]).
    pub(crate) copies_end: Option<u64>,
}

impl Session {
    /// A new, empty session. It gets an id when it is first sealed.
    pub fn new() -> Session {
        Session::default()
    }

    /// A fresh session replacing the client's rejected cookies (bit `i` of `client_chunks`
    /// for chunk `i`), which it removes when stored.
    pub(crate) fn fresh_replacing(client_chunks: u64, rejected: Rejected) -> Session {
        Session { client_chunks, rejected: Some(rejected), ..Session::default() }
    }

    /// Whether the client's session cookies were rejected on this request, and, coarsely, why:
    /// this session is then a fresh one that replaced them. `None` when the request brought no
    /// session or a valid one.
    ///
    /// Use it to tell the user "your session expired, please sign in again"; the exact reason
    /// is in the `tracing` warning the adapter logged, never for the client.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use sealed_session::{Key, KeyRing, Rejected, SessionCodec, SessionConfig};
    ///
    /// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
    /// let now = SystemTime::now();
    /// let mut session = codec.load([""], None, now);
    /// assert_eq!(session.rejected(), None);
    /// session.insert("user", "ada")?;
    /// let header = codec.save(&mut session, now)?.expect("changed").request_header();
    ///
    /// let next_day = now + Duration::from_secs(24 * 3600);
    /// assert_eq!(codec.load([header.as_str()], None, next_day).rejected(), Some(Rejected::Expired));
    /// assert_eq!(codec.load(["__Host-session=junk"], None, now).rejected(), Some(Rejected::Invalid));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rejected(&self) -> Option<Rejected> {
        self.rejected
    }

    /// Records a successful seal: the session now matches what the client will hold.
    pub(crate) fn commit(&mut self, meta: FrameMeta, key_id: KeyId, chunks: u8) {
        self.meta = Some(meta);
        self.lifetime = None;
        self.key_id = Some(key_id);
        self.chunk_count = chunks;
        self.changed = false;
        self.renew = false;
        self.purged = false;
    }

    /// Whether the session travels in a token header (see
    /// [`SessionCodec::open_token`](crate::SessionCodec::open_token)) rather than in cookies.
    pub fn via_token(&self) -> bool {
        self.via_token
    }

    /// Reads a value, deserializing it into `T`.
    ///
    /// # Errors
    ///
    /// [`ValueError::Decode`] when the stored value does not deserialize into `T`. The error
    /// names the key and what kind of value was found, never the value itself.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, ValueError> {
        let Some((bytes, _)) = self.values.get(key) else { return Ok(None) };
        rmp_serde::from_slice(bytes).map(Some).map_err(|error| ValueError::decode(key, &error))
    }

    /// Reads a value, or `T::default()` when there is none.
    ///
    /// # Errors
    ///
    /// As [`get`](Session::get).
    pub fn get_or_default<T: DeserializeOwned + Default>(
        &self,
        key: &str,
    ) -> Result<T, ValueError> {
        self.get(key).map(Option::unwrap_or_default)
    }

    /// Reads the value under `key` (or `T::default()`), lets `f` change it, and stores it back,
    /// keeping it [sensitive](Session::insert_sensitive) if it was. Returns what `f` returns.
    ///
    /// # Errors
    ///
    /// As [`get`](Session::get) (then nothing is stored) and [`insert`](Session::insert).
    pub fn update<T, R>(&mut self, key: &str, f: impl FnOnce(&mut T) -> R) -> Result<R, ValueError>
    where
        T: Serialize + DeserializeOwned + Default,
    {
        let mut value: T = self.get_or_default(key)?;
        let result = f(&mut value);
        let sensitive = self.is_sensitive(key);
        self.insert_entry(key.to_owned(), &value, sensitive)?;
        Ok(result)
    }

    /// The MessagePack bytes of a value, undecoded.
    pub fn get_raw(&self, key: &str) -> Option<&[u8]> {
        self.values.get(key).map(|(bytes, _)| bytes)
    }

    /// Stores a value (structs are encoded as maps, by field name). Takes the value or a
    /// reference to it: `insert("n", n + 1)` and `insert("cart", &cart)` both work.
    ///
    /// # Errors
    ///
    /// [`ValueError::Encode`] if serde cannot serialize it or it nests deeper than the format
    /// reads ([`MAX_DEPTH`](crate::format::MAX_DEPTH) levels), [`ValueError::KeyTooLong`] for a
    /// key longer than [`MAX_KEY_LEN`].
    pub fn insert<T: Serialize>(
        &mut self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), ValueError> {
        self.insert_entry(key.into(), &value, false)
    }

    /// Stores a secret (a CSRF or OAuth token, say). Sensitive values are stored apart from the
    /// others and never compressed, so that data an attacker can put into the session cannot
    /// reveal them through the sealed length (the CRIME/BREACH attacks).
    ///
    /// # Errors
    ///
    /// As [`insert`](Session::insert).
    pub fn insert_sensitive<T: Serialize>(
        &mut self,
        key: impl Into<String>,
        value: T,
    ) -> Result<(), ValueError> {
        self.insert_entry(key.into(), &value, true)
    }

    fn insert_entry<T: Serialize + ?Sized>(
        &mut self,
        key: String,
        value: &T,
        sensitive: bool,
    ) -> Result<(), ValueError> {
        if key.len() > MAX_KEY_LEN {
            return Err(ValueError::KeyTooLong { len: key.len(), max: MAX_KEY_LEN });
        }
        let bytes = match rmp_serde::to_vec_named(value) {
            Ok(bytes) => bytes,
            Err(error) => return Err(ValueError::encode(key, &error)),
        };
        // Opening reads values nested at most MAX_DEPTH levels: refuse what could never open.
        if msgpack::value_len(&bytes, 1) != Some(bytes.len()) {
            let error = rmp_serde::encode::Error::DepthLimitExceeded;
            return Err(ValueError::encode(key, &error));
        }
        let entry = Entry { bytes, sensitive };
        // Writing to a purged session starts a new one (say, a "logged out" notice): it is
        // sealed under a new id rather than dropped.
        self.purged = false;
        if self.values.get(&key) != Some((&entry.bytes, entry.sensitive)) {
            self.values.insert(key, entry);
            self.changed = true;
        }
        Ok(())
    }

    /// Removes a value, returning it decoded into `T` (`None` if there was none).
    ///
    /// # Errors
    ///
    /// [`ValueError::Decode`] when the old value does not deserialize into `T`; it is removed
    /// all the same. To remove without decoding, use [`remove_raw`](Session::remove_raw).
    pub fn remove<T: DeserializeOwned>(&mut self, key: &str) -> Result<Option<T>, ValueError> {
        let Some(bytes) = self.remove_raw(key) else { return Ok(None) };
        rmp_serde::from_slice(&bytes).map(Some).map_err(|error| ValueError::decode(key, &error))
    }

    /// Removes a value, returning its MessagePack bytes (`None` if there was none):
    /// `remove_raw(key).is_some()` says whether it was there.
    pub fn remove_raw(&mut self, key: &str) -> Option<Vec<u8>> {
        if !self.contains_key(key) {
            return None;
        }
        let entry = self.values.remove(key)?;
        self.changed = true;
        Some(entry.bytes)
    }

    /// Removes every value, keeping the session's id and lifetime.
    pub fn clear(&mut self) {
        if !self.is_empty() {
            self.values = Values::default();
            self.changed = true;
        }
    }

    /// Ends the session: every value is removed and, when it is next saved, every one of its
    /// cookies is removed from the browser. Use it for logout.
    pub fn purge(&mut self) {
        self.lifetime = None;
        let values = std::mem::take(&mut self.values);
        if self.meta.is_some() {
            self.ended_values = values;
        }
        let mut ended = self.meta.take();
        if let (Some(meta), Some(end)) = (ended.as_mut(), self.copies_end) {
            meta.expires_at = meta.expires_at.max(end);
        }
        self.ended = ended.or(self.ended);
        self.purged = true;
        self.changed = true;
    }

    /// Gives the session a new id and a new lifetime when it is next sealed, keeping its values.
    /// Call it when privileges change (at login) so an id planted before login (session
    /// fixation) is worth nothing after it.
    ///
    /// It also drops the CSRF token (see [`csrf_token`](Session::csrf_token)): the next page
    /// gets a new one.
    pub fn renew(&mut self) {
        self.remove_raw(CSRF_KEY);
        self.renew = true;
        self.purged = false;
        self.changed = true;
    }

    /// Sets how long this session lives (see [`Lifetime`]): "remember me", a browser-session
    /// cookie, a fixed end. It is sealed with the session, so a client cannot lengthen it, and
    /// it never reaches past the configured absolute timeout. The next response writes the
    /// session's cookies, even if the lifetime was already this one.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use sealed_session::{Lifetime, Session};
    ///
    /// let mut session = Session::new();
    /// session.insert("user", "ada")?;
    /// assert_eq!(session.lifetime(), Lifetime::Configured);
    /// session.set_lifetime(Lifetime::Idle(Duration::from_secs(7 * 24 * 3600)));
    /// assert_eq!(session.lifetime(), Lifetime::Idle(Duration::from_secs(7 * 24 * 3600)));
    /// # Ok::<(), sealed_session::ValueError>(())
    /// ```
    pub fn set_lifetime(&mut self, lifetime: Lifetime) {
        self.lifetime = Some(lifetime);
        // A session with nothing to write (new and empty) stays unwritten: an insert later
        // seals it with this lifetime.
        if self.meta.is_some() || !self.is_empty() {
            self.changed = true;
        }
    }

    /// This session's lifetime: the one set during this request, else the one it was sealed
    /// with ([`Lifetime::Until`] then names the sealed end, never past the configured absolute
    /// end), else [`Lifetime::Configured`].
    pub fn lifetime(&self) -> Lifetime {
        match (self.lifetime, &self.meta) {
            (Some(lifetime), _) => lifetime,
            (None, Some(meta)) => Lifetime::of(meta),
            (None, None) => Lifetime::Configured,
        }
    }

    /// The id and absolute expiry of the session [`purge`](Session::purge) ended, if it had
    /// been sealed: what a revocation store must remember so a copied cookie stops working.
    /// For a session whose end was brought forward by a [`Lifetime::Until`], the expiry is the
    /// latest a copy taken before that may have (its issue plus the absolute timeout).
    pub fn ended(&self) -> Option<(SessionId, SystemTime)> {
        self.ended.map(|meta| (SessionId(meta.session_id), from_unix(meta.expires_at)))
    }

    /// Whether a value is stored under `key`.
    pub fn contains_key(&self, key: &str) -> bool {
        self.values.get(key).is_some()
    }

    /// Whether `key` holds a value stored with [`insert_sensitive`](Session::insert_sensitive).
    pub fn is_sensitive(&self, key: &str) -> bool {
        self.values.get(key).is_some_and(|(_, sensitive)| sensitive)
    }

    /// The keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.values.iter().map(|(key, _, _)| key)
    }

    /// How many values the session holds.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the session holds no value.
    pub fn is_empty(&self) -> bool {
        self.values.len() == 0
    }

    /// Whether values were changed (or the session renewed or purged) since it was opened or
    /// last sealed.
    pub fn is_changed(&self) -> bool {
        self.changed
    }

    /// Whether the session was purged and not used since.
    pub fn is_purged(&self) -> bool {
        self.purged
    }

    /// The session's id; `None` until it is first sealed.
    pub fn id(&self) -> Option<SessionId> {
        self.meta.map(|meta| SessionId(meta.session_id))
    }

    /// When the session was issued (first sealed, or last renewed).
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.meta.map(|meta| from_unix(meta.issued_at))
    }

    /// When the idle window was last refreshed.
    pub fn last_refresh(&self) -> Option<SystemTime> {
        self.meta.map(|meta| from_unix(meta.last_refresh))
    }

    /// When the session's absolute lifetime ends.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.meta.map(|meta| from_unix(meta.expires_at))
    }

    /// [`issued_at`](Session::issued_at), [`last_refresh`](Session::last_refresh) and
    /// [`expires_at`](Session::expires_at) as the frame carries them: whole Unix seconds, exact
    /// up to `2^64 - 1` (a `SystemTime` stops at the platform's limit, `2^63 - 1` seconds on
    /// Linux). For tools that print or compare the frame's times.
    ///
    /// ```
    /// use sealed_session::Session;
    ///
    /// assert_eq!(Session::new().times_unix(), None, "not sealed yet");
    /// ```
    pub fn times_unix(&self) -> Option<SessionTimes> {
        self.meta.map(|meta| SessionTimes {
            issued_at: meta.issued_at,
            last_refresh: meta.last_refresh,
            expires_at: meta.expires_at,
        })
    }

    /// The key the session was opened with or last sealed under.
    pub fn key_id(&self) -> Option<KeyId> {
        self.key_id
    }

    /// How many cookies the session's token was split across when it was opened (0 for a new
    /// session).
    pub fn chunk_count(&self) -> usize {
        usize::from(self.chunk_count)
    }

    /// How many cookies the client sent under this session's name beyond the token's own
    /// chunks: leftovers of an earlier, larger session. The next seal removes them. Only chunk
    /// names a session under the codec's configuration can span count (and are removed); more
    /// are ignored.
    pub fn stale_chunks(&self) -> usize {
        (self.client_chunks >> self.chunk_count).count_ones() as usize
    }
}

impl fmt::Debug for Session {
    /// Shows keys, never values: a session may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id())
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("changed", &self.changed)
            .finish_non_exhaustive()
    }
}

/// A session's times in whole Unix seconds, exactly as its frame carries them (see
/// [`Session::times_unix`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionTimes {
    /// When the session was issued (first sealed, or last renewed).
    pub issued_at: u64,
    /// When the idle window was last refreshed.
    pub last_refresh: u64,
    /// When the session's absolute lifetime ends.
    pub expires_at: u64,
}
