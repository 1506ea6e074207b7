//! The seal path's last step: a sealed token's chunks and the removals a response carries, as
//! Set-Cookie lines. The attributes are written once per codec (see [`SessionCodec::new`]);
//! the adapters get header values without a `Cookie` built for each chunk.

use cookie::Cookie;

use super::SessionCodec;
use crate::chunk;
use crate::config::max_age_secs;
use crate::format::MAX_CHUNKS;

impl SessionCodec {
    /// `lines` as cookies.
    pub(super) fn set_cookies(&self, lines: &CookieLines) -> SetCookies {
        let name = &self.config.name;
        let chunks = lines
            .chunks()
            .map(|(i, part)| self.template(&chunk::chunk_name(name, i), part, lines.max_age));
        SetCookies(chunks.chain(lines.removals().map(|i| self.removal(i))).collect())
    }

    /// `lines` as Set-Cookie header values: [`SetCookies::header_values`] of
    /// [`set_cookies`](SessionCodec::set_cookies), without building or formatting a cookie
    /// for a chunk (removals are rare, and keep the cookie crate's `Expires` date).
    pub(super) fn header_values(&self, lines: &CookieLines) -> impl Iterator<Item = String> {
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
    pub(super) fn attributes_len(&self, max_age: Option<u64>) -> usize {
        let max_age_len = max_age.map_or(0, |secs| {
            let secs = max_age_secs(secs);
            "; Max-Age=".len() + secs.checked_ilog10().map_or(1, |digits| digits as usize + 1)
        });
        1 + self.attributes.len() + max_age_len
    }

    /// A cookie with this configuration's attributes (see [`SessionConfig::cookie`]).
    pub(super) fn template(
        &self,
        name: &str,
        value: &str,
        max_age: Option<u64>,
    ) -> Cookie<'static> {
        self.config.cookie(name, value, max_age)
    }

    /// The header that deletes chunk `index` (same name, path and domain, `Max-Age=0`).
    fn removal(&self, index: usize) -> Cookie<'static> {
        let mut cookie = self.template(&chunk::chunk_name(&self.config.name, index), "", None);
        cookie.make_removal();
        cookie
    }
}

/// A response's Set-Cookie headers before they are written: the chunks of a sealed token (none
/// for a purge), then removals. They become [`Cookie`]s for [`SetCookies`], or header values
/// straight away for the adapters, which never need the cookies.
pub(super) struct CookieLines {
    pub(super) token: String,
    /// The length of each chunk's part of `token`.
    pub(super) lens: Vec<usize>,
    pub(super) max_age: Option<u64>,
    /// Bit `i` is set when chunk `i` is to be removed.
    pub(super) removed: u64,
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
    use std::time::{Duration, SystemTime};

    use cookie::SameSite;

    use super::*;
    use crate::Key;
    use crate::config::SessionConfig;
    use crate::keys::KeyRing;
    use crate::session::Session;

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
                5, // `__Secure-s` (a Domain and a path): 9 characters more per line than `s`
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
