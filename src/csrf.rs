//! A per-session CSRF token (the synchronizer token pattern), masked per response.
//!
//! The session holds a secret of 32 random bytes, base64url, in its sensitive section (never
//! compressed, so attacker-chosen values next to it cannot reveal it through the sealed length).
//! A page never shows that secret: [`Session::csrf_token`] returns it masked with a fresh
//! one-time pad on every call, `base64url(pad || pad XOR secret)`, as Django and Rails do. A
//! page compressed with gzip or brotli next to reflected input (the BREACH setup) therefore
//! carries a different string each time, and its compressed length says nothing about the
//! secret. A form carries the token in a hidden field named [`CSRF_FIELD`], a script in the
//! [`CSRF_HEADER`] header; [`Session::verify_csrf`] unmasks it and compares in constant time.
//! [`Session::renew`] drops the secret, so a token seen before login is worth nothing after it.
//!
//! The session cookie's default `SameSite=Lax` already keeps other sites' cross-site POSTs
//! from carrying the session; the token is defence in depth for browsers or set-ups where that
//! does not hold (old browsers, `SameSite=None`, a sibling subdomain that is same-site).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

use crate::error::{CsrfError, SealError};
use crate::session::{CSRF_KEY, Session};

/// The header a script sends the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The form field a page sends the token in.
pub const CSRF_FIELD: &str = "csrf_token";
/// Random bytes in the session's secret (and in each token's pad).
const CSRF_TOKEN_LEN: usize = 32;
/// Characters of a masked token: base64url, no padding, of pad and masked secret.
const MASKED_TOKEN_CHARS: usize = (2 * CSRF_TOKEN_LEN * 4).div_ceil(3);

impl Session {
    /// A CSRF token for this session, masked afresh on every call: the session's secret XORed
    /// with a fresh 32-byte pad, sent with the pad (`base64url(pad || pad XOR secret)`), so
    /// that no two pages carry the same string and a page compressed next to reflected input
    /// (BREACH) says nothing about the secret. Every token this returns verifies until the
    /// session is renewed. The session's secret is made (and stored as a sensitive value)
    /// on first use. Put a token in every form that changes state (a hidden field named
    /// [`CSRF_FIELD`]) or send it in the [`CSRF_HEADER`] header, and check it with
    /// [`verify_csrf`](Session::verify_csrf). Making the secret changes the session, so a
    /// visitor who is shown a form gets a session cookie.
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::Session;
    ///
    /// let mut session = Session::new();
    /// let token = session.csrf_token()?;
    /// let again = session.csrf_token()?;
    /// assert_ne!(token, again, "masked afresh for every page");
    /// assert!(session.verify_csrf(Some(&token)) && session.verify_csrf(Some(&again)));
    /// assert!(!session.verify_csrf(Some("forged")));
    /// assert!(!session.verify_csrf(None));
    ///
    /// session.renew(); // at login
    /// assert!(!session.verify_csrf(Some(&token)), "renew rotates the secret");
    /// # Ok::<(), sealed_session::SealError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`SealError::Random`] if the system's random number generator fails.
    pub fn csrf_token(&mut self) -> Result<String, SealError> {
        let secret = match self.csrf_secret() {
            Some(secret) => secret,
            None => {
                let mut secret = Zeroizing::new([0u8; CSRF_TOKEN_LEN]);
                getrandom::fill(&mut *secret).map_err(SealError::Random)?;
                let encoded = Zeroizing::new(BASE64.encode(*secret));
                // Cannot fail: a short key and a string value always encode.
                self.insert_sensitive(CSRF_KEY, &*encoded).map_err(|_| SealError::Encrypt)?;
                secret
            }
        };
        let mut masked = Zeroizing::new([0u8; 2 * CSRF_TOKEN_LEN]);
        let (pad, cipher) = masked.split_at_mut(CSRF_TOKEN_LEN);
        getrandom::fill(pad).map_err(SealError::Random)?;
        for ((out, pad), secret) in cipher.iter_mut().zip(pad.iter()).zip(secret.iter()) {
            *out = pad ^ secret;
        }
        Ok(BASE64.encode(*masked))
    }

    /// Whether `submitted` is a token of this session: masked, as
    /// [`csrf_token`](Session::csrf_token) returns it, or the bare secret, as versions before
    /// masking put in pages (so forms rendered just before an upgrade still post). Compared in
    /// constant time. `false` when nothing was submitted or the session has no token yet.
    pub fn verify_csrf(&self, submitted: Option<&str>) -> bool {
        let (Some(submitted), Some(secret)) = (submitted, self.csrf_secret()) else {
            return false;
        };
        // Longer than a masked token: not ours, and not worth decoding.
        if submitted.len() > MASKED_TOKEN_CHARS {
            return false;
        }
        let Ok(bytes) = BASE64.decode(submitted).map(Zeroizing::new) else { return false };
        let mut unmasked = Zeroizing::new([0u8; CSRF_TOKEN_LEN]);
        match bytes.len() {
            CSRF_TOKEN_LEN => unmasked.copy_from_slice(&bytes),
            len if len == 2 * CSRF_TOKEN_LEN => {
                let (pad, cipher) = bytes.split_at(CSRF_TOKEN_LEN);
                for ((out, pad), cipher) in unmasked.iter_mut().zip(pad).zip(cipher) {
                    *out = pad ^ cipher;
                }
            }
            _ => return false,
        }
        bool::from(unmasked.ct_eq(&*secret))
    }

    /// [`verify_csrf`](Session::verify_csrf) as a `Result`, for `?` in a handler: the
    /// [`CsrfError`] answers `403 Forbidden` (directly or as a
    /// [`SessionError`](crate::SessionError)).
    ///
    /// # Errors
    ///
    /// [`CsrfError`] when `submitted` is missing or is not this session's token.
    pub fn require_csrf(&self, submitted: Option<&str>) -> Result<(), CsrfError> {
        if self.verify_csrf(submitted) { Ok(()) } else { Err(CsrfError) }
    }

    /// The session's CSRF secret, if it has one (a value under [`CSRF_KEY`] that is not 32
    /// base64url bytes counts as none, and is replaced by the next token).
    fn csrf_secret(&self) -> Option<Zeroizing<[u8; CSRF_TOKEN_LEN]>> {
        let encoded = Zeroizing::new(self.get::<String>(CSRF_KEY).ok().flatten()?);
        let bytes = Zeroizing::new(BASE64.decode(encoded.as_bytes()).ok()?);
        let mut secret = Zeroizing::new([0u8; CSRF_TOKEN_LEN]);
        (bytes.len() == CSRF_TOKEN_LEN).then(|| secret.copy_from_slice(&bytes))?;
        Some(secret)
    }
}

/// The headers a browser sends about where a request came from, as the bytes received: the
/// second layer of CSRF defence, which an app turns on with
/// [`SessionConfigBuilder::csrf_origin_check`](crate::SessionConfigBuilder::csrf_origin_check)
/// and which [`SessionHandle::verify_csrf_origin`](crate::SessionHandle::verify_csrf_origin)
/// applies (the axum and actix-web helpers build it from the request themselves).
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use sealed_session::{Key, KeyRing, RequestOrigin, Session, SessionCodec, SessionConfig};
/// use sealed_session::SessionHandle;
///
/// let config = SessionConfig::builder("session").csrf_origin_check(true).build()?;
/// let codec = Arc::new(SessionCodec::new(config, KeyRing::single(Key::generate())));
/// let handle = SessionHandle::with_codec(Session::new(), codec);
/// let token = handle.csrf_token()?;
/// let from = |site: &'static str| {
///     RequestOrigin::new(Some(site.as_bytes()), None, Some(b"shop.example"))
/// };
/// assert!(handle.verify_csrf_origin(Some(&token), from("same-origin")));
/// assert!(!handle.verify_csrf_origin(Some(&token), from("cross-site")), "the token is not enough");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOrigin<'h> {
    /// `Sec-Fetch-Site`: `same-origin`, `same-site`, `cross-site` or `none`.
    sec_fetch_site: Option<&'h [u8]>,
    /// `Origin`: `scheme://host[:port]`, or `null`.
    origin: Option<&'h [u8]>,
    /// `Host` (or HTTP/2's `:authority`), to compare `Origin` with.
    host: Option<&'h [u8]>,
}

impl<'h> RequestOrigin<'h> {
    /// The request's `Sec-Fetch-Site`, `Origin` and `Host` header values, each as received.
    pub fn new(
        sec_fetch_site: Option<&'h [u8]>,
        origin: Option<&'h [u8]>,
        host: Option<&'h [u8]>,
    ) -> RequestOrigin<'h> {
        RequestOrigin { sec_fetch_site, origin, host }
    }
}

impl RequestOrigin<'_> {
    /// Whether the browser says the request came from another origin, as Go's
    /// `CrossOriginProtection` decides it: `Sec-Fetch-Site` when present (only `same-origin`
    /// and `none`, a user's own navigation, pass), else `Origin` against `Host`; an origin in
    /// `trusted` always passes, and a request with neither header (a client that is not a
    /// browser, or a browser too old to send them) passes this layer and meets the token.
    pub(crate) fn is_cross_origin(&self, trusted: &[String]) -> bool {
        let trusted_origin =
            || self.origin.is_some_and(|o| trusted.iter().any(|t| t.as_bytes() == o));
        if let Some(site) = self.sec_fetch_site {
            return !(site == b"same-origin" || site == b"none" || trusted_origin());
        }
        let Some(origin) = self.origin else { return false };
        if trusted_origin() {
            return false;
        }
        // `scheme://authority`: the authority must be the request's own host.
        let authority = origin
            .iter()
            .position(|&b| b == b':')
            .and_then(|colon| origin.get(colon + 1..)?.strip_prefix(b"//"));
        match (authority, self.host) {
            (Some(authority), Some(host)) => !authority.eq_ignore_ascii_case(host),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_masked_afresh_and_all_verify() {
        let mut session = Session::new();
        let tokens: Vec<String> =
            (0..100).map(|_| session.csrf_token().expect("a token")).collect();
        let secret: String = session.get(CSRF_KEY).expect("decodes").expect("stored");
        let distinct: std::collections::HashSet<_> = tokens.iter().collect();
        assert_eq!(
            distinct.len(),
            tokens.len(),
            "a token repeated: the page would carry it verbatim"
        );
        for token in &tokens {
            assert!(session.verify_csrf(Some(token)), "every masked token verifies");
            assert!(!token.contains(&secret[..8]), "the secret shows through the mask");
        }
        assert!(session.verify_csrf(Some(&secret)), "the bare secret (pages before masking)");
    }

    #[test]
    fn wrong_tokens_fail() {
        let mut session = Session::new();
        let token = session.csrf_token().expect("a token");
        let mut other = Session::new();
        let foreign = other.csrf_token().expect("a token");
        let mut flipped = BASE64.decode(&token).expect("base64url");
        flipped[40] ^= 1;
        let cases: [(&str, String); 7] = [
            ("another session's token", foreign),
            ("one bit flipped in the masked half", BASE64.encode(&flipped)),
            ("the pad alone", BASE64.encode(&flipped[..CSRF_TOKEN_LEN])),
            ("empty", String::new()),
            ("not base64url", "!".repeat(86)),
            ("too long", format!("{token}AAAA")),
            ("cut short", token[..80].to_owned()),
        ];
        for (case, submitted) in cases {
            assert!(!session.verify_csrf(Some(&submitted)), "{case} verified");
        }
        assert!(session.verify_csrf(Some(&token)));
    }

    #[test]
    fn cross_origin_requests_are_told_apart() {
        let trusted = vec!["https://admin.example".to_owned()];
        let o = |site: Option<&'static str>, origin: Option<&'static str>| RequestOrigin {
            sec_fetch_site: site.map(str::as_bytes),
            origin: origin.map(str::as_bytes),
            host: Some(b"shop.example"),
        };
        let cases = [
            // (Sec-Fetch-Site, Origin, cross-origin)
            (Some("same-origin"), Some("https://shop.example"), false),
            (Some("none"), None, false),
            (Some("same-site"), Some("https://blog.shop.example"), true),
            (Some("cross-site"), Some("https://evil.example"), true),
            (Some("cross-site"), Some("https://admin.example"), false),
            (None, Some("https://shop.example"), false),
            (None, Some("https://SHOP.example"), false),
            (None, Some("https://evil.example"), true),
            (None, Some("https://shop.example.evil.example"), true),
            (None, Some("null"), true),
            (None, Some("https://admin.example"), false),
            (None, None, false),
        ];
        for (site, origin, cross) in cases {
            assert_eq!(o(site, origin).is_cross_origin(&trusted), cross, "{site:?} {origin:?}");
        }
    }
}
