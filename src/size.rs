//! How large a session would be if it were sealed now, for handlers that check before
//! returning (see [`SessionCodec::measure`](crate::SessionCodec::measure)).

use std::fmt;

use crate::format::MAX_CHUNKS;

/// The size a session would seal to, against the configured limits: the share of the Cookie
/// request header its cookies would take (or its token's length, for a session carried in a
/// token header) and the size of its serialized state.
///
/// [`fits`](SessionSize::fits) is exactly whether sealing it now would succeed on size: a
/// session that does not fit makes the response fail at save time.
///
/// # Examples
///
/// ```
/// use std::time::SystemTime;
/// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
///
/// let codec = SessionCodec::new(SessionConfig::default(), KeyRing::single(Key::generate()));
/// let mut session = Session::new();
/// session.insert("user", "ada")?;
/// let size = codec.measure(&session, SystemTime::now());
/// assert!(size.fits(), "{size}");
/// assert_eq!(size.cookies, 1);
/// assert!(size.cookie_bytes < size.cookie_budget);
/// # Ok::<(), sealed_session::ValueError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSize {
    /// Bytes of the Cookie request header the session's cookies would take (`name=value; `
    /// for each), or the token's length for a session carried in a token header.
    pub cookie_bytes: usize,
    /// The configured Cookie header budget.
    pub cookie_budget: usize,
    /// How many cookies the session would take.
    pub cookies: usize,
    /// The most cookies a session may span ([`MAX_CHUNKS`]).
    pub max_cookies: usize,
    /// Bytes of the session's serialized state (MessagePack, before compression).
    pub state_bytes: usize,
    /// The configured maximum state size.
    pub max_state_size: usize,
}

impl SessionSize {
    pub(crate) fn new(cookie_bytes: usize, cookies: usize, cookie_budget: usize) -> SessionSize {
        SessionSize {
            cookie_bytes,
            cookie_budget,
            cookies,
            max_cookies: MAX_CHUNKS,
            state_bytes: 0,
            max_state_size: 0,
        }
    }

    /// Whether the session can be sealed: within the Cookie header budget, the cookie count
    /// and the maximum state size.
    pub fn fits(&self) -> bool {
        self.cookie_bytes <= self.cookie_budget
            && self.cookies <= self.max_cookies
            && self.state_bytes <= self.max_state_size
    }
}

impl fmt::Display for SessionSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} of {} bytes of Cookie header in {} cookie(s) (at most {}); state {} of {} bytes",
            self.cookie_bytes,
            self.cookie_budget,
            self.cookies,
            self.max_cookies,
            self.state_bytes,
            self.max_state_size
        )
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use crate::{Key, KeyRing, SealError, Session, SessionCodec, SessionConfig};

    /// `len` bytes of hexadecimal text that compresses only to about half.
    fn noise(len: usize) -> String {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut out = String::with_capacity(len + 16);
        while out.len() < len {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            out.push_str(&format!("{:016x}", state >> 1));
        }
        out.truncate(len);
        out
    }

    #[test]
    fn measuring_predicts_sealing() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let configs = [
            SessionConfig::default(),
            SessionConfig::builder("app").persistent(true).max_cookie_line(2048).build().unwrap(),
            SessionConfig::builder("app").max_state_size(4096).build().unwrap(),
        ];
        // Every outcome occurs: sealed, over the budget, over the state size.
        let mut outcomes = [0; 3];
        for config in configs {
            let codec = SessionCodec::new(config, KeyRing::single(Key::generate()));
            for (plain, sensitive) in [(0, 0), (100, 0), (3_000, 40), (7_000, 0), (12_000, 0)] {
                let mut session = Session::new();
                session.insert("plain", noise(plain)).unwrap();
                if sensitive > 0 {
                    session.insert_sensitive("secret", noise(sensitive)).unwrap();
                }
                let size = codec.measure(&session, now);
                let case = format!("{:?} {plain}+{sensitive}: {size}", codec.config());
                match codec.seal(&mut session, now) {
                    Ok(cookies) => {
                        assert!(size.fits(), "{case}");
                        assert_eq!(size.cookie_bytes, cookies.request_header_share(), "{case}");
                        assert_eq!(size.cookies, cookies.len(), "{case}");
                        outcomes[0] += 1;
                    }
                    Err(
                        SealError::TooLarge { needed, .. }
                        | SealError::TooManyCookies { needed, .. },
                    ) => {
                        assert!(!size.fits(), "{case}");
                        assert_eq!(size.cookie_bytes, needed, "{case}");
                        outcomes[1] += 1;
                    }
                    Err(SealError::StateTooLarge { size: state, .. }) => {
                        assert!(!size.fits(), "{case}");
                        assert_eq!(size.state_bytes, state, "{case}");
                        outcomes[2] += 1;
                    }
                    Err(error) => panic!("{case}: {error}"),
                }
            }
        }
        assert!(outcomes.iter().all(|&n| n > 0), "{outcomes:?}");
    }
}
