//! A session's own lifetime: "remember me", a browser-session cookie, a fixed end. Sealed with
//! the session, so a client cannot lengthen it, and never past the configured absolute timeout
//! (key retirement counts on that bound).

use std::time::{Duration, SystemTime};

use crate::format::frame::{FrameMeta, SealedLifetime};
use crate::time::{from_unix, to_unix};

/// How long one session lives, set with [`Session::set_lifetime`](crate::Session::set_lifetime)
/// (or [`SessionHandle::set_lifetime`](crate::SessionHandle::set_lifetime)).
///
/// Every lifetime is sealed inside the session, so a client that edits its cookie's `Max-Age`
/// or `Expires` keeps nothing longer: the session is refused on open once its sealed bound has
/// passed. And none reaches past the configured
/// [`absolute_timeout`](crate::SessionConfigBuilder::absolute_timeout) from the session's
/// issue: that bound is what makes retiring a key safe.
///
/// | lifetime | sealed bound | `Max-Age` of its cookies |
/// |---|---|---|
/// | [`Configured`](Lifetime::Configured) | the configured idle and absolute timeouts | the time left to the absolute end with [`persistent`](crate::SessionConfigBuilder::persistent), else none |
/// | [`BrowserSession`](Lifetime::BrowserSession) | the configured idle and absolute timeouts | none: the browser forgets it when it closes |
/// | [`Idle(d)`](Lifetime::Idle) | an idle timeout of `d` (longer or shorter than the configured one) and the absolute end | `d`, or the time left to the absolute end if less |
/// | [`Until(t)`](Lifetime::Until) | an end at `t` (or the absolute end, if sooner), and no idle timeout | the time left to that end |
///
/// A session keeps its lifetime across [`renew`](crate::Session::renew) (set "remember me" and
/// renew at login, in either order); [`purge`](crate::Session::purge) returns it to
/// `Configured`.
///
/// # Examples
///
/// "Remember me" for 30 days, in an app whose sessions otherwise idle out after 30 minutes:
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use sealed_session::{Key, KeyRing, Lifetime, Session, SessionCodec, SessionConfig};
///
/// let config = SessionConfig::builder("session")
///     .idle_timeout(Duration::from_secs(30 * 60))
///     .absolute_timeout(Duration::from_secs(30 * 24 * 3600))
///     .build()?;
/// let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
/// let now = SystemTime::now();
///
/// let mut session = Session::new();
/// session.insert("user", "ada")?;
/// session.set_lifetime(Lifetime::Idle(Duration::from_secs(7 * 24 * 3600)));
/// let cookies = codec.seal(&mut session, now)?;
/// assert_eq!(cookies.cookies()[0].max_age().map(|age| age.whole_days()), Some(7));
///
/// // Three days idle: past the configured 30 minutes, within the session's own 7 days.
/// let later = now + Duration::from_secs(3 * 24 * 3600);
/// let opened = codec.open(&cookies.request_header(), later)?;
/// assert_eq!(opened.lifetime(), Lifetime::Idle(Duration::from_secs(7 * 24 * 3600)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Lifetime {
    /// As the configuration says: its idle and absolute timeouts, and `Max-Age` when
    /// [`persistent`](crate::SessionConfigBuilder::persistent) is on.
    #[default]
    Configured,
    /// A browser-session cookie (no `Max-Age`), whatever `persistent` says. The configured
    /// idle and absolute timeouts still end it inside the seal: a browser that keeps session
    /// cookies (restoring tabs) does not keep the session longer.
    BrowserSession,
    /// An idle timeout of this session's own, instead of the configured one: the session ends
    /// when it has not been resealed for this long (whole seconds, at least one), and at its
    /// absolute end in any case. Its cookies get it as `Max-Age`.
    Idle(Duration),
    /// An end at this time, or at the absolute end if that comes first (the end can only be
    /// brought forward), and no idle timeout. Its cookies count `Max-Age` down to that end. An
    /// opened session reports the sealed end (whole seconds).
    Until(SystemTime),
}

impl Lifetime {
    /// The lifetime sealed in `meta`, as the application sees it.
    pub(crate) fn of(meta: &FrameMeta) -> Lifetime {
        match meta.lifetime {
            SealedLifetime::Configured => Lifetime::Configured,
            SealedLifetime::BrowserSession => Lifetime::BrowserSession,
            SealedLifetime::Idle(secs) => Lifetime::Idle(Duration::from_secs(secs)),
            SealedLifetime::Fixed => Lifetime::Until(from_unix(meta.expires_at)),
        }
    }

    /// The lifetime to seal, and the session's end: `end` (the configured one) brought forward
    /// to an [`Until`](Lifetime::Until) time. An idle timeout past `absolute` (the configured
    /// absolute timeout, in seconds) is cut to it: the end bounds it anyway.
    pub(crate) fn seal(self, end: u64, absolute: u64) -> (SealedLifetime, u64) {
        match self {
            Lifetime::Configured => (SealedLifetime::Configured, end),
            Lifetime::BrowserSession => (SealedLifetime::BrowserSession, end),
            Lifetime::Idle(idle) => {
                (SealedLifetime::Idle(idle.as_secs().clamp(1, absolute.max(1))), end)
            }
            Lifetime::Until(at) => (SealedLifetime::Fixed, end.min(to_unix(at))),
        }
    }
}

/// The `Max-Age` of a session's cookies sealed at `now` with `meta`: `persistent` is the
/// configuration's choice for sessions that made none.
pub(crate) fn max_age(meta: &FrameMeta, now: u64, persistent: bool) -> Option<u64> {
    let left = meta.expires_at.saturating_sub(now);
    match meta.lifetime {
        SealedLifetime::Configured => persistent.then_some(left),
        SealedLifetime::BrowserSession => None,
        SealedLifetime::Idle(secs) => Some(secs.min(left)),
        SealedLifetime::Fixed => Some(left),
    }
}
