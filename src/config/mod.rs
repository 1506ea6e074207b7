//! Session configuration: the cookie's name and attributes, size limits, lifetimes.
//!
//! `builder.rs` holds the builder: the secure defaults, the setters, and `build`, which checks
//! the settings together; `validate.rs` holds the rules browsers impose on a name, a path, a
//! domain and a header name, each checked alone.

mod builder;
mod validate;

pub use builder::SessionConfigBuilder;

use std::time::Duration;

use cookie::Cookie;
pub use cookie::SameSite;

use crate::format::Mode;
use crate::random::Randomness;

/// The prefix browsers reserve for cookies that are `Secure`, `Path=/` and carry no `Domain`:
/// such a cookie cannot be set or shadowed by a sibling subdomain or over plain http.
pub const HOST_PREFIX: &str = "__Host-";

/// The prefix browsers reserve for cookies that are `Secure`.
pub(crate) const SECURE_PREFIX: &str = "__Secure-";

/// What precedes a token header's name in the associated data.
pub(crate) const TOKEN_NAME_PREFIX: &str = "header:";

/// The default share of the Cookie request header a session may use, in bytes.
///
/// nginx's default `large_client_header_buffers 4 8k` refuses a request whose Cookie header
/// line exceeds 8,192 bytes ("400 Request Header Or Cookie Too Large"); Apache's default
/// `LimitRequestFieldSize` is the same. 6,144 bytes leaves 2 KiB for the header name and the
/// application's other cookies.
///
/// Proxies also buffer the **response** headers: nginx's `proxy_buffer_size` is one 4 KB page
/// by default, and a session whose Set-Cookie lines exceed it gets a 502 from nginx. Set
/// `proxy_buffer_size 8k` when sessions can grow past about 3.5 KB.
pub const DEFAULT_COOKIE_BUDGET: usize = 6 * 1024;

/// The default [`compression_threshold`](SessionConfigBuilder::compression_threshold): a body of
/// fewer MessagePack bytes is stored as it is. Measured on 6,000 states drawn from the
/// project's corpus (`cargo run --release --example compression_threshold`): below 384 bytes
/// plain zstd saved at most 2% of a body (and never made one of 128 to 191 bytes smaller), less
/// than the sixteenth a compressed body must save to be kept, so trying only cost `seal` its 3
/// to 4 µs; from 384 bytes on it saved 7.5% and more. With the dictionary
/// ([`compression_dictionary`](SessionConfigBuilder::compression_dictionary)) bodies of 128 to
/// 383 bytes would shrink by 14 to 17% (22 to 53 bytes, `cargo run --release --example
/// dictionary`), but every later `open` would pay about 0.3 µs to decompress them, a third of
/// what opening such a state costs: the threshold stays where compression pays in time too.
pub const DEFAULT_COMPRESSION_THRESHOLD: usize = 384;

/// The default maximum size of a session's MessagePack state, decompressed.
pub const DEFAULT_MAX_STATE_SIZE: usize = 64 * 1024;

/// The default longest Cookie request header the codec will look at. Anything longer is
/// rejected before it is parsed.
pub const DEFAULT_MAX_COOKIE_HEADER: usize = 32 * 1024;

/// How a session is stored in cookies. Build one with [`SessionConfig::builder`];
/// [`SessionConfig::default`] is the builder's defaults.
///
/// The defaults are the secure ones: the cookie is `HttpOnly`, `Secure`, `SameSite=Lax`,
/// `Path=/`, named with the `__Host-` prefix, lasts for the browser session, is encrypted
/// (not merely signed), expires after 30 minutes idle and 12 hours in all.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use sealed_session::SessionConfig;
///
/// let config = SessionConfig::builder("sid")
///     .idle_timeout(Duration::from_secs(15 * 60))
///     .build()?;
/// assert_eq!(config.cookie_name(), "__Host-sid");
/// # Ok::<(), sealed_session::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub(crate) name: String,
    pub(crate) path: String,
    pub(crate) domain: Option<String>,
    pub(crate) secure: bool,
    pub(crate) http_only: bool,
    pub(crate) same_site: SameSite,
    pub(crate) persistent: bool,
    pub(crate) mode: Mode,
    pub(crate) cookie_budget: usize,
    pub(crate) max_cookie_line: usize,
    pub(crate) max_state_size: usize,
    pub(crate) max_cookie_header: usize,
    pub(crate) compression_threshold: Option<usize>,
    pub(crate) compression_dictionary: bool,
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_timeout: Duration,
    pub(crate) refresh_interval: Duration,
    pub(crate) clock_skew: Duration,
    pub(crate) token_header: String,
    pub(crate) purpose: Option<String>,
    pub(crate) randomness: Randomness,
    pub(crate) sensitive_keys: Vec<String>,
    pub(crate) csrf_origin_check: bool,
    pub(crate) csrf_trusted_origins: Vec<String>,
}

/// A `Max-Age` in seconds as the cookie crate takes it.
pub(crate) fn max_age_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// Keys that are sensitive in every configuration: where the session crates the bridges serve
/// keep their secrets. axum-login keeps the user's auth hash (often derived from the password
/// hash) under `axum-login.data`, its default data key; actix-identity keeps the user id under
/// `actix_identity.user_id`. Both sit beside values an attacker can influence (flash messages,
/// form input), which must never be compressed together with them.
pub const DEFAULT_SENSITIVE_KEYS: &[&str] = &["axum-login.data", "actix_identity.user_id"];

impl Default for SessionConfig {
    fn default() -> SessionConfig {
        SessionConfig::builder("session").build().expect("the defaults are valid")
    }
}

impl SessionConfig {
    /// How bodies are compressed when sealing.
    pub(crate) fn compression(&self) -> crate::format::compress::Policy {
        crate::format::compress::Policy {
            threshold: self.compression_threshold,
            dictionary: self.compression_dictionary,
        }
    }

    /// A cookie named `name` holding `value`, with this configuration's attributes and, when
    /// given, a `Max-Age` of `max_age` seconds: what every chunk's Set-Cookie line says.
    pub(crate) fn cookie(&self, name: &str, value: &str, max_age: Option<u64>) -> Cookie<'static> {
        let mut cookie = Cookie::build((name.to_owned(), value.to_owned()))
            .path(self.path.clone())
            .secure(self.secure)
            .http_only(self.http_only)
            .same_site(self.same_site);
        if let Some(domain) = &self.domain {
            cookie = cookie.domain(domain.clone());
        }
        if let Some(secs) = max_age {
            cookie = cookie.max_age(cookie::time::Duration::seconds(max_age_secs(secs)));
        }
        cookie.build()
    }

    /// The longest `Max-Age` a seal under this configuration writes, which any session may
    /// carry (see [`Lifetime`](crate::Lifetime)): the absolute timeout plus the clock skew. No
    /// seal writes more: its end is at most the issue plus the absolute timeout, and it was
    /// issued at most the skew ahead of now.
    pub(crate) fn longest_max_age(&self) -> u64 {
        self.absolute_timeout.as_secs().saturating_add(self.clock_skew.as_secs())
    }

    /// The length of the longest Set-Cookie line a seal writes for the first cookie, its value
    /// left out: the name, the `=` and the attributes with the longest `Max-Age`.
    pub(crate) fn longest_first_line_without_value(&self) -> usize {
        self.cookie(&self.name, "", Some(self.longest_max_age())).to_string().len()
    }

    /// A builder for a session stored under the cookie name `name` (before any prefix).
    pub fn builder(name: impl Into<String>) -> SessionConfigBuilder {
        SessionConfigBuilder::new(name.into())
    }

    /// The name of the first cookie, prefix included. Further chunks are named `NAME.1`,
    /// `NAME.2`, and so on. This name is bound into every token's associated data.
    pub fn cookie_name(&self) -> &str {
        &self.name
    }

    /// The request header that carries a token (lower case).
    pub fn token_header(&self) -> &str {
        &self.token_header
    }

    /// The keys whose values are always stored in the sensitive section, however they were
    /// inserted (see [`SessionConfigBuilder::sensitive_key`]).
    pub fn sensitive_keys(&self) -> impl Iterator<Item = &str> {
        self.sensitive_keys.iter().map(String::as_str)
    }

    /// The deployment purpose bound into every token, if one is configured (see
    /// [`SessionConfigBuilder::purpose`]).
    pub fn purpose(&self) -> Option<&str> {
        self.purpose.as_deref()
    }

    /// The name a header-carried token is bound to in its associated data. The `:` cannot occur
    /// in a cookie name, so no cookie shares it.
    pub(crate) fn token_aad_name(&self) -> String {
        format!("{TOKEN_NAME_PREFIX}{}", self.token_header)
    }

    /// The share of the Cookie request header the session may use, in bytes.
    pub fn cookie_budget(&self) -> usize {
        self.cookie_budget
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The absolute timeout.
    pub fn absolute_timeout(&self) -> Duration {
        self.absolute_timeout
    }

    /// The clock skew allowance.
    pub fn clock_skew(&self) -> Duration {
        self.clock_skew
    }

    /// Where nonces and session ids come from.
    pub fn randomness(&self) -> Randomness {
        self.randomness
    }

    /// Whether tokens are encrypted ([`Mode::Sealed`]) or only signed ([`Mode::Signed`]).
    pub fn mode(&self) -> Mode {
        self.mode
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_secure() {
        let config = SessionConfig::default();
        assert_eq!(config.cookie_name(), "__Host-session");
        assert!(config.secure && config.http_only);
        assert_eq!(config.same_site, SameSite::Lax);
        assert_eq!(config.mode, Mode::Sealed);
        assert_eq!(config.idle_timeout, Duration::from_secs(1800));
    }
}
