//! The framework-free pipeline: Cookie header in, [`Session`] out; [`Session`] in, Set-Cookie
//! headers out.
//!
//! The two directions live apart because they trust different things. `open.rs` reads what the
//! client sent (Cookie headers, a token header): untrusted bytes in, checked before anything is
//! believed. `seal.rs` turns the application's state back into a token (deciding whether to
//! save, purging, sealing, storing, measuring), and `set_cookie.rs` writes that token as
//! Set-Cookie lines: trusted state out. What both need (the codec, its constructor and
//! accessors) is here.
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

mod open;
mod seal;
mod set_cookie;

pub use seal::Outgoing;
pub use set_cookie::SetCookies;

use crate::chunk;
use crate::config::SessionConfig;
use crate::format::MAX_CHUNKS;
use crate::format::frame::FrameMeta;
use crate::keys::SharedKeyRing;

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
    /// Sessions logged out lately on this node under this cookie name, shared by the codec's
    /// clones so that every adapter built from it (one per worker, say) sees every logout.
    logouts: std::sync::Arc<crate::logouts::RecentLogouts>,
}

impl SessionCodec {
    /// A codec for `config`, sealing and opening with `keys`.
    pub fn new(config: SessionConfig, keys: impl Into<SharedKeyRing>) -> SessionCodec {
        let mut codec = SessionCodec {
            config,
            keys: keys.into(),
            writable: 1,
            attributes: Box::default(),
            logouts: std::sync::Arc::default(),
        };
        // `name=value` then the attributes: the cookie crate writes `Max-Age` last (there is
        // no `Expires`), so a line with one is these attributes and then it.
        let empty = codec.template("", "", None).to_string();
        codec.attributes = empty.strip_prefix('=').unwrap_or(&empty).into();
        codec.writable = chunk::mask(codec.writable_chunks());
        codec
    }

    /// When a session sealed with `meta` ends under today's configuration: its sealed end, or
    /// its issue time plus today's absolute timeout if that comes first (FORMAT.md 4.1).
    fn configured_end(&self, meta: &FrameMeta) -> u64 {
        let configured = meta.issued_at.saturating_add(self.config.absolute_timeout.as_secs());
        meta.expires_at.min(configured)
    }

    /// The most chunks a session sealed under this configuration can span. Removal headers
    /// are sent only for chunks below it that the client sent: a request naming `NAME` to
    /// `NAME.31` must not buy 32 removal lines (enough to pass a proxy's 4 KB response header
    /// buffer), and no legitimate session ever had more chunks than this.
    ///
    /// Every chunk but the last fills its Set-Cookie line, and so takes `line - attrs + 3`
    /// bytes of the budget (its `name=value; `, with `attrs` the attributes' length counting
    /// the `=`, as [`attributes_len`](SessionCodec::attributes_len) does); the last takes at
    /// least its name and 4 bytes.
    /// The attributes are counted at their longest, for a bound that holds for every seal
    /// (see [`SessionConfig::longest_max_age`]).
    fn writable_chunks(&self) -> usize {
        let config = &self.config;
        let attrs_len = self.attributes_len(Some(config.longest_max_age()));
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

    /// The sessions logged out lately under this codec (and its clones) on this node.
    pub(crate) fn logouts(&self) -> &std::sync::Arc<crate::logouts::RecentLogouts> {
        &self.logouts
    }
}
