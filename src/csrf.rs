//! A per-session CSRF token (the synchronizer token pattern).
//!
//! The token is 32 random bytes, base64url, kept in the session's sensitive section (never
//! compressed, so attacker-chosen values next to it cannot reveal it through the sealed length).
//! A form carries it in a hidden field named [`CSRF_FIELD`], a script in the [`CSRF_HEADER`]
//! header; [`Session::verify_csrf`] compares in constant time. [`Session::renew`] drops it, so
//! a token seen before login is worth nothing after it.
//!
//! The session cookie's default `SameSite=Lax` already keeps other sites' cross-site POSTs
//! from carrying the session; the token is defence in depth for browsers or set-ups where that
//! does not hold (old browsers, `SameSite=None`, a sibling subdomain that is same-site).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::SealError;
use crate::session::{CSRF_KEY, Session};

/// The header a script sends the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page sends the token in.
pub const CSRF_FIELD: &str = "csrf_token";
/// Random bytes in a token.
const CSRF_TOKEN_LEN: usize = 32;

impl Session {
    /// The session's CSRF token, made (and stored as a sensitive value) on first use. Put it in
    /// every form that changes state (a hidden field named [`CSRF_FIELD`]) or send it in the
    /// [`CSRF_HEADER`] header, and check it with [`verify_csrf`](Session::verify_csrf).
    /// Making the token changes the session, so a visitor who is shown a form gets a session
    /// cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::Session;
    ///
    /// let mut session = Session::new();
    /// let token = session.csrf_token()?;
    /// assert_eq!(session.csrf_token()?, token, "one token per session");
    /// assert!(session.verify_csrf(Some(&token)));
    /// assert!(!session.verify_csrf(Some("forged")));
    /// assert!(!session.verify_csrf(None));
    ///
    /// session.renew(); // at login
    /// assert!(!session.verify_csrf(Some(&token)), "renew rotates the token");
    /// # Ok::<(), sealed_session::SealError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SealError::Random`] if the system's random number generator fails.
    pub fn csrf_token(&mut self) -> Result<String, SealError> {
        if let Ok(Some(token)) = self.get::<String>(CSRF_KEY) {
            return Ok(token);
        }
        let mut bytes = Zeroizing::new([0u8; CSRF_TOKEN_LEN]);
        getrandom::fill(&mut *bytes).map_err(SealError::Random)?;
        let token = BASE64.encode(*bytes);
        // Cannot fail: a short key and a string value always encode.
        self.insert_sensitive(CSRF_KEY, &token).map_err(|_| SealError::Encrypt)?;
        Ok(token)
    }

    /// Whether `submitted` is this session's CSRF token, compared in constant time. `false`
    /// when nothing was submitted or the session has no token yet.
    pub fn verify_csrf(&self, submitted: Option<&str>) -> bool {
        let (Some(submitted), Ok(Some(token))) = (submitted, self.get::<String>(CSRF_KEY)) else {
            return false;
        };
        let token = Zeroizing::new(token);
        bool::from(token.as_bytes().ct_eq(submitted.as_bytes()))
    }
}
