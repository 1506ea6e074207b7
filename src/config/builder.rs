//! [`SessionConfigBuilder`]: the secure defaults, one setter per setting, and
//! [`build`](SessionConfigBuilder::build), which checks the settings together.
//!
//! Kept whole past 500 lines on purpose: it is one idea, a setter per setting, each with the
//! documentation (and the warning, where a setting weakens a default) that belongs beside it;
//! the per-value rules already live in `validate.rs`.

use std::time::Duration;

use cookie::SameSite;

use super::validate::{
    has_prefix, validate_domain, validate_name, validate_path, validate_purpose,
    validate_token_header,
};
use super::{
    DEFAULT_COMPRESSION_THRESHOLD, DEFAULT_COOKIE_BUDGET, DEFAULT_MAX_COOKIE_HEADER,
    DEFAULT_MAX_STATE_SIZE, HOST_PREFIX, SECURE_PREFIX, SessionConfig,
};
use crate::error::ConfigError;
use crate::format::{HEADER_CHARS, HEADER_LEN, MAX_CHUNKS, MAX_COOKIE_LINE, MAX_NAME_LEN, Mode};
use crate::random::Randomness;

/// Builds a [`SessionConfig`]; every setter has the secure choice as its default, and every
/// setter that can weaken it says so.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct SessionConfigBuilder {
    name: String,
    host_prefix: bool,
    path: String,
    domain: Option<String>,
    secure: bool,
    http_only: bool,
    same_site: SameSite,
    persistent: bool,
    mode: Mode,
    cookie_budget: usize,
    max_cookie_line: usize,
    max_state_size: usize,
    max_cookie_header: usize,
    compression_threshold: Option<usize>,
    compression_dictionary: bool,
    idle_timeout: Duration,
    absolute_timeout: Duration,
    refresh_interval: Duration,
    clock_skew: Duration,
    token_header: String,
    purpose: Option<String>,
    randomness: Randomness,
    sensitive_keys: Vec<String>,
    csrf_origin_check: bool,
    csrf_trusted_origins: Vec<String>,
}

impl SessionConfigBuilder {
    /// The builder [`SessionConfig::builder`] returns: every setting at its secure default.
    pub(super) fn new(name: String) -> SessionConfigBuilder {
        SessionConfigBuilder {
            name,
            host_prefix: true,
            path: "/".to_owned(),
            domain: None,
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            persistent: false,
            mode: Mode::Sealed,
            cookie_budget: DEFAULT_COOKIE_BUDGET,
            max_cookie_line: MAX_COOKIE_LINE,
            max_state_size: DEFAULT_MAX_STATE_SIZE,
            max_cookie_header: DEFAULT_MAX_COOKIE_HEADER,
            compression_threshold: Some(DEFAULT_COMPRESSION_THRESHOLD),
            compression_dictionary: true,
            idle_timeout: Duration::from_secs(30 * 60),
            absolute_timeout: Duration::from_secs(12 * 60 * 60),
            refresh_interval: Duration::from_secs(60),
            clock_skew: Duration::from_secs(60),
            token_header: "x-session-token".to_owned(),
            purpose: None,
            randomness: Randomness::default(),
            sensitive_keys: super::DEFAULT_SENSITIVE_KEYS.iter().map(|&k| k.to_owned()).collect(),
            csrf_origin_check: false,
            csrf_trusted_origins: Vec::new(),
        }
    }

    /// Whether to add a browser prefix to the name (default: `true`): `__Host-` when the cookie
    /// is `Secure`, `Path=/` and has no `Domain`; `__Secure-` when it is `Secure` but has a
    /// `Domain` or another path (so a plain-http response cannot plant it). A cookie that is
    /// not `Secure` gets no prefix.
    ///
    /// **Weakens security when `false`:** without a prefix, a sibling subdomain or a plain
    /// http response can plant a cookie of the same name.
    pub fn host_prefix(mut self, on: bool) -> Self {
        self.host_prefix = on;
        self
    }

    /// The cookie's `Path` (default `/`). Any other path turns the `__Host-` prefix into
    /// `__Secure-` (see [`host_prefix`](SessionConfigBuilder::host_prefix)). It must
    /// start with `/` and hold only visible ASCII without `;` (percent-encode anything else);
    /// [`build`](SessionConfigBuilder::build) refuses it otherwise, as it would be ignored by
    /// browsers or inject further attributes into every Set-Cookie header.
    pub fn cookie_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }

    /// The cookie's `Domain` (default: none, so only the exact host receives it).
    ///
    /// **Weakens security:** every subdomain then receives the session, and the `__Host-`
    /// prefix can no longer be used (the name gets `__Secure-` instead). A sibling subdomain
    /// can then plant a session of its own under that name; open refuses a request that
    /// carries two different sessions (`RejectReason::Conflicting`) rather than pick one.
    ///
    /// A host name: ASCII letters, digits, `-` and `.` (an internationalized name in its
    /// `xn--` form); [`build`](SessionConfigBuilder::build) refuses anything else.
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.domain = Some(domain.into());
        self
    }

    /// Whether the cookie is `Secure`, sent over https only (default `true`).
    ///
    /// **Weakens security when `false`:** the session then travels over plain http where anyone
    /// on the path can copy it. For local development, Chrome, Edge and Firefox treat
    /// `http://localhost` as a secure context and accept `Secure` and `__Host-` cookies from it;
    /// Safari (WebKit) does not, and drops them. Set it to `false` only in a development
    /// configuration chosen by an explicit setting (or serve https locally), never from a
    /// default. Without `Secure`, the name loses its `__Host-` (or `__Secure-`) prefix.
    pub fn cookie_secure(mut self, on: bool) -> Self {
        self.secure = on;
        self
    }

    /// Whether the cookie is `HttpOnly`, hidden from scripts (default `true`).
    ///
    /// **Weakens security when `false`:** any script on the page, an injected one included,
    /// can then read and exfiltrate the session.
    pub fn cookie_http_only(mut self, on: bool) -> Self {
        self.http_only = on;
        self
    }

    /// The cookie's `SameSite` (default `Lax`).
    ///
    /// **`None` weakens security:** the browser then sends the session on cross-site requests,
    /// so you need CSRF protection of your own. `None` requires `Secure`.
    pub fn cookie_same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }

    /// Whether the cookie persists across browser restarts (with `Max-Age` set to the rest of
    /// the absolute lifetime) or lasts for the browser session (default: browser session).
    /// Either way, expiry is enforced from inside the sealed payload, not by this attribute.
    pub fn persistent(mut self, on: bool) -> Self {
        self.persistent = on;
        self
    }

    /// Encrypt ([`Mode::Sealed`], the default) or only sign ([`Mode::Signed`]) the session.
    ///
    /// **`Signed` weakens confidentiality:** the client can read every value (but not change
    /// one). Use it only for state the user may see.
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// The share of the Cookie request header the session's cookies may take, in bytes: the
    /// sum over its cookies of `name=value` plus a two-byte separator (default
    /// [`DEFAULT_COOKIE_BUDGET`]). Sealing a larger session fails with
    /// [`SealError::TooLarge`](crate::SealError::TooLarge). It may not exceed
    /// [`max_cookie_header`](SessionConfigBuilder::max_cookie_header); raise both together.
    pub fn cookie_budget(mut self, bytes: usize) -> Self {
        self.cookie_budget = bytes;
        self
    }

    /// The longest Set-Cookie line (name, value and attributes) a chunk may take (default and
    /// maximum 4,096, the size every browser stores). A smaller value splits a session across
    /// more, smaller cookies. [`build`](SessionConfigBuilder::build) refuses a line too short
    /// to hold the first cookie's name, attributes and token header
    /// ([`ConfigError::CookieLine`]), as a long path or domain with a short line would be.
    pub fn max_cookie_line(mut self, bytes: usize) -> Self {
        self.max_cookie_line = bytes;
        self
    }

    /// The largest state, as MessagePack before compression, a session may hold (default
    /// [`DEFAULT_MAX_STATE_SIZE`]). Decompression on open stops at this size.
    pub fn max_state_size(mut self, bytes: usize) -> Self {
        self.max_state_size = bytes;
        self
    }

    /// The longest Cookie request header the codec reads (default
    /// [`DEFAULT_MAX_COOKIE_HEADER`]); a longer one is rejected without being parsed.
    pub fn max_cookie_header(mut self, bytes: usize) -> Self {
        self.max_cookie_header = bytes;
        self
    }

    /// Compress the session's ordinary values when their MessagePack is at least this many
    /// bytes and compression makes them smaller by at least a sixteenth (default
    /// [`DEFAULT_COMPRESSION_THRESHOLD`]); `None` never compresses.
    /// Values inserted with [`Session::insert_sensitive`](crate::Session::insert_sensitive)
    /// are never compressed.
    pub fn compression_threshold(mut self, bytes: Option<usize>) -> Self {
        self.compression_threshold = bytes;
        self
    }

    /// Whether bodies under 4 KB are compressed with the dictionary that ships with the crate
    /// (default `true`): on a state of a few hundred bytes it makes sealing's compression about
    /// three times faster, opening's a little faster and the cookie a little smaller, since zstd
    /// then reuses the dictionary's entropy tables instead of building its own (`FORMAT.md`
    /// section 4.2, `BENCHMARKS.md`).
    ///
    /// **Upgrading a running fleet** from a version without the dictionary: versions before it
    /// reject a cookie sealed with it (a fresh session: the user is logged out). Deploy with
    /// `false` everywhere first, then turn it on once no older node serves requests, as with a
    /// key rotation. Every version opens cookies sealed either way.
    ///
    /// ```
    /// use sealed_session::SessionConfig;
    ///
    /// // The first deploy of a rolling upgrade: seal as older versions can read.
    /// let config = SessionConfig::builder("session").compression_dictionary(false).build()?;
    /// # Ok::<(), sealed_session::ConfigError>(())
    /// ```
    pub fn compression_dictionary(mut self, enabled: bool) -> Self {
        self.compression_dictionary = enabled;
        self
    }

    /// Where nonces and session ids come from (default [`Randomness::Os`]: the operating
    /// system's generator for every draw, safe after `fork`).
    ///
    /// **Warning**: [`Randomness::ThreadLocal`] saves a system call per seal but repeats nonces
    /// if the process's memory is duplicated after it starts sealing (`fork` without `exec`, a
    /// VM snapshot restored more than once): see [`Randomness`].
    pub fn randomness(mut self, source: Randomness) -> Self {
        self.randomness = source;
        self
    }

    /// How long a session may go unused before it expires (default 30 minutes).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How long a session may live in all, however active (default 12 hours).
    pub fn absolute_timeout(mut self, timeout: Duration) -> Self {
        self.absolute_timeout = timeout;
        self
    }

    /// The least time between two refreshes of the idle window (default 60 seconds): an
    /// unchanged session is resealed only when its last refresh is at least this old.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// How far clocks of the fleet's nodes may disagree (default 60 seconds).
    pub fn clock_skew(mut self, skew: Duration) -> Self {
        self.clock_skew = skew;
        self
    }

    /// The request header that carries a session token for clients without a cookie jar
    /// (default `x-session-token`; see
    /// [`SessionCodec::seal_token`](crate::SessionCodec::seal_token)). Matched
    /// case-insensitively.
    pub fn token_header(mut self, name: impl Into<String>) -> Self {
        self.token_header = name.into();
        self
    }

    /// Always store the value under `key` in the sensitive section, which is never compressed,
    /// however it was inserted: with plain `insert`, or through a bridge
    /// ([`TowerSessionsLayer`], [`ActixSessionMiddleware`]) whose session API has no notion of
    /// sensitive values. Name every key that holds a secret (an OAuth token, an API key, a
    /// password-derived hash) so it is never compressed beside values an attacker can
    /// influence, which would let the sealed length reveal it (CRIME; see SECURITY.md). The
    /// keys of [`DEFAULT_SENSITIVE_KEYS`](crate::DEFAULT_SENSITIVE_KEYS) (axum-login's and
    /// actix-identity's) are always sensitive.
    ///
    /// [`TowerSessionsLayer`]: crate::integrations
    /// [`ActixSessionMiddleware`]: crate::integrations
    ///
    /// # Examples
    ///
    /// ```
    /// use sealed_session::SessionConfig;
    ///
    /// let config = SessionConfig::builder("session").sensitive_key("oauth_token").build()?;
    /// assert!(config.sensitive_keys().any(|key| key == "oauth_token"));
    /// assert!(config.sensitive_keys().any(|key| key == "axum-login.data"), "a default");
    /// # Ok::<(), sealed_session::ConfigError>(())
    /// ```
    pub fn sensitive_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        if !self.sensitive_keys.contains(&key) {
            self.sensitive_keys.push(key);
        }
        self
    }

    /// A second layer of CSRF defence (default off): the CSRF checks that see the request
    /// (`verify_csrf_headers` in axum, `verify_csrf_request` in actix-web,
    /// [`SessionHandle::verify_csrf_origin`](crate::SessionHandle::verify_csrf_origin) anywhere)
    /// also refuse a request the browser says came from another origin: `Sec-Fetch-Site`
    /// other than `same-origin` or `none`, or, without it, an `Origin` whose host is not the
    /// request's `Host`. Requests without either header (clients that are not browsers) meet
    /// the token alone. Turn it on when every legitimate form posts from the app's own origin;
    /// name other origins with [`csrf_trusted_origin`](SessionConfigBuilder::csrf_trusted_origin).
    pub fn csrf_origin_check(mut self, on: bool) -> Self {
        self.csrf_origin_check = on;
        self
    }

    /// An origin (`scheme://host[:port]`, as browsers send it in `Origin`) whose requests pass
    /// the [`csrf_origin_check`](SessionConfigBuilder::csrf_origin_check) as if they were the
    /// app's own.
    pub fn csrf_trusted_origin(mut self, origin: impl Into<String>) -> Self {
        self.csrf_trusted_origins.push(origin.into());
        self
    }

    /// A deployment purpose bound into every token this configuration seals and required of
    /// every token it opens (default: none), as ASP.NET binds an application discriminator:
    /// with distinct purposes, two deployments that share a key ring (a staging copy of
    /// production's, say) never accept each other's cookies or header tokens. Printable ASCII,
    /// 1 to 200 bytes, e.g. `"shop/production"`.
    ///
    /// Tokens sealed without a purpose still open where none is configured, and only there:
    /// adding a purpose to a running deployment signs its users out once (roll it out as you
    /// would a new cookie name).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::SystemTime;
    /// use sealed_session::{Key, KeyRing, Session, SessionCodec, SessionConfig};
    ///
    /// let ring = KeyRing::single(Key::generate());
    /// let codec = |purpose: &str| {
    ///     let config = SessionConfig::builder("session").purpose(purpose).build().unwrap();
    ///     SessionCodec::new(config, ring.clone())
    /// };
    /// let (staging, production) = (codec("shop/staging"), codec("shop/production"));
    /// let mut session = Session::new();
    /// session.insert("user", "ada")?;
    /// let cookies = staging.seal(&mut session, SystemTime::now())?.request_header();
    /// assert!(staging.open(&cookies, SystemTime::now()).is_ok());
    /// assert!(production.open(&cookies, SystemTime::now()).is_err(), "another deployment's");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn purpose(mut self, purpose: impl Into<String>) -> Self {
        self.purpose = Some(purpose.into());
        self
    }

    /// Checks the settings and builds the configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] for an invalid cookie name ([`InvalidName`](ConfigError::InvalidName)),
    /// path ([`InvalidPath`](ConfigError::InvalidPath)), domain
    /// ([`InvalidDomain`](ConfigError::InvalidDomain)) or token header name
    /// ([`InvalidTokenHeader`](ConfigError::InvalidTokenHeader)); a name whose own `__Host-` or
    /// `__Secure-` prefix the settings do not allow ([`Prefix`](ConfigError::Prefix)); a
    /// `max_cookie_line` too short for the first cookie's name, attributes and token header
    /// ([`CookieLine`](ConfigError::CookieLine)); a budget out of range or above
    /// `max_cookie_header`, `SameSite=None` without `Secure`, or a zero timeout.
    pub fn build(self) -> Result<SessionConfig, ConfigError> {
        validate_name(&self.name)?;
        validate_path(&self.path)?;
        if let Some(domain) = &self.domain {
            validate_domain(domain)?;
        }
        let host_allowed = self.secure && self.path == "/" && self.domain.is_none();
        let name = self.prefixed_name(host_allowed)?;
        if name.len() > MAX_NAME_LEN {
            return Err(ConfigError::InvalidName { name, why: "longer than 200 bytes" });
        }
        validate_token_header(&self.token_header)?;
        if let Some(purpose) = &self.purpose {
            validate_purpose(purpose)?;
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::Invalid("SameSite=None requires Secure"));
        }
        if self.idle_timeout.is_zero() || self.absolute_timeout.is_zero() {
            return Err(ConfigError::Invalid("timeouts must be longer than zero"));
        }
        if self.max_cookie_line > MAX_COOKIE_LINE || self.max_cookie_line < 512 {
            return Err(ConfigError::Invalid("max_cookie_line must be within 512..=4096"));
        }
        let (min, max) = (256, MAX_CHUNKS * MAX_COOKIE_LINE);
        if !(min..=max).contains(&self.cookie_budget) {
            return Err(ConfigError::Budget { budget: self.cookie_budget, min, max });
        }
        // Otherwise a session that fits its budget could be sealed but never opened again.
        if self.max_cookie_header < self.cookie_budget {
            return Err(ConfigError::Invalid(
                "max_cookie_header is smaller than the cookie budget",
            ));
        }
        if self.max_state_size < HEADER_LEN {
            return Err(ConfigError::Invalid("max_state_size is too small"));
        }
        let config = SessionConfig {
            name,
            path: self.path,
            domain: self.domain,
            secure: self.secure,
            http_only: self.http_only,
            same_site: self.same_site,
            persistent: self.persistent,
            mode: self.mode,
            cookie_budget: self.cookie_budget,
            max_cookie_line: self.max_cookie_line,
            max_state_size: self.max_state_size,
            max_cookie_header: self.max_cookie_header,
            compression_threshold: self.compression_threshold,
            compression_dictionary: self.compression_dictionary,
            idle_timeout: self.idle_timeout,
            absolute_timeout: self.absolute_timeout,
            refresh_interval: self.refresh_interval,
            clock_skew: self.clock_skew,
            token_header: self.token_header.to_ascii_lowercase(),
            purpose: self.purpose,
            randomness: self.randomness,
            sensitive_keys: self.sensitive_keys,
            csrf_origin_check: self.csrf_origin_check,
            csrf_trusted_origins: self.csrf_trusted_origins,
        };
        // A first cookie too short for the token's header is written by a seal that succeeds,
        // and then refused by every open (FORMAT.md 6.1): the session would be lost without an
        // error. Counted with the longest attributes a seal can write.
        let min = config.longest_first_line_without_value() + HEADER_CHARS;
        if config.max_cookie_line < min {
            return Err(ConfigError::CookieLine { line: config.max_cookie_line, min });
        }
        Ok(config)
    }
}

impl SessionConfigBuilder {
    /// The cookie's name with the `__Host-` prefix when it is on and allowed (`host_allowed`),
    /// or else `__Secure-` when it is on and the cookie is `Secure`.
    ///
    /// A name that already carries a browser prefix (matched without regard to case, as
    /// browsers do) is taken as given, never prefixed twice (`__Host-__Host-x`), and its
    /// requirements are checked: browsers silently drop a `__Host-` cookie with a `Domain`, a
    /// path other than `/` or without `Secure`, and a `__Secure-` cookie without `Secure`.
    /// A `__Secure-` name where `__Host-` would apply is refused rather than silently weaker
    /// than the default: `host_prefix(false)` says that is meant.
    fn prefixed_name(&self, host_allowed: bool) -> Result<String, ConfigError> {
        let name = &self.name;
        let refuse = |why| Err(ConfigError::Prefix { name: name.clone(), why });
        if has_prefix(name, HOST_PREFIX) {
            if self.domain.is_some() {
                return refuse("a __Host- cookie may not have a Domain");
            }
            if self.path != "/" {
                return refuse("a __Host- cookie must have Path=/");
            }
            if !self.secure {
                return refuse("a __Host- cookie must be Secure");
            }
            return Ok(name.clone());
        }
        if has_prefix(name, SECURE_PREFIX) {
            if !self.secure {
                return refuse("a __Secure- cookie must be Secure");
            }
            if self.host_prefix && host_allowed {
                return refuse(
                    "the __Host- prefix would be added to a __Secure- name; call \
                     host_prefix(false) to keep __Secure-, or drop it from the name",
                );
            }
            return Ok(name.clone());
        }
        // Where `__Host-` cannot apply (a Domain, a deeper Path) but the cookie is Secure,
        // `__Secure-` still keeps plain-http responses and other schemes from planting it.
        Ok(match (self.host_prefix, host_allowed, self.secure) {
            (true, true, _) => format!("{HOST_PREFIX}{name}"),
            (true, false, true) => format!("{SECURE_PREFIX}{name}"),
            _ => name.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_only_when_allowed() {
        let name = |b: SessionConfigBuilder| b.build().unwrap().name;
        assert_eq!(name(SessionConfig::builder("s").cookie_secure(false)), "s");
        assert_eq!(name(SessionConfig::builder("s").cookie_path("/app")), "__Secure-s");
        assert_eq!(name(SessionConfig::builder("s").cookie_domain("example.com")), "__Secure-s");
        let insecure_path = SessionConfig::builder("s").cookie_path("/app").cookie_secure(false);
        assert_eq!(name(insecure_path), "s");
        assert_eq!(name(SessionConfig::builder("s").host_prefix(false)), "s");
    }

    #[test]
    fn invalid_settings_are_refused() {
        for name in ["", "a b", "a;b", "a.b", "é", "a=b"] {
            assert!(SessionConfig::builder(name).build().is_err(), "{name:?}");
        }
        assert!(SessionConfig::builder("x".repeat(300)).build().is_err());
        let none_insecure =
            SessionConfig::builder("s").cookie_same_site(SameSite::None).cookie_secure(false);
        assert!(none_insecure.build().is_err());
        assert!(SessionConfig::builder("s").cookie_budget(10).build().is_err());
        assert!(SessionConfig::builder("s").cookie_budget(40_000).build().is_err());
        let raised = SessionConfig::builder("s").cookie_budget(40_000).max_cookie_header(48_000);
        assert!(raised.build().is_ok());
        assert!(SessionConfig::builder("s").idle_timeout(Duration::ZERO).build().is_err());
        assert!(SessionConfig::builder("s").max_cookie_line(5000).build().is_err());
    }
}
