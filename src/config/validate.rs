//! The rules browsers impose on a cookie's name, path and domain, and HTTP on a header name:
//! each value checked alone, so a Set-Cookie line can never be split or extended by one.

use super::TOKEN_NAME_PREFIX;
use crate::error::ConfigError;
use crate::format::{MAX_NAME_LEN, MAX_PURPOSE_LEN};

/// The longest `Path` or `Domain` value browsers store; a longer attribute is ignored
/// (RFC 6265bis, section 5.6).
const MAX_ATTRIBUTE_LEN: usize = 1024;

/// The longest host name (RFC 1035), plus a leading dot.
const MAX_DOMAIN_LEN: usize = 254;

/// Whether `name` starts with the browser prefix `prefix`, in any case (RFC 6265bis).
pub(super) fn has_prefix(name: &str, prefix: &str) -> bool {
    name.get(..prefix.len()).is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

/// A `Path` browsers store as given, and that adds no attribute to a Set-Cookie line.
pub(super) fn validate_path(path: &str) -> Result<(), ConfigError> {
    let invalid = |why| Err(ConfigError::InvalidPath { path: path.to_owned(), why });
    if path.bytes().any(|b| b.is_ascii_control()) {
        return invalid("contains a control character (CR and LF would split the header)");
    }
    if path.contains(';') {
        return invalid("contains ';', which would start another cookie attribute");
    }
    if !path.bytes().all(|b| b.is_ascii_graphic()) {
        return invalid("contains a space or a non-ASCII character; percent-encode it");
    }
    if !path.starts_with('/') {
        return invalid("does not start with '/' (browsers would ignore it)");
    }
    if path.len() > MAX_ATTRIBUTE_LEN {
        return invalid("longer than 1024 bytes (browsers would ignore it)");
    }
    Ok(())
}

/// A `Domain` that is a host name (ASCII letters, digits, `-`, dots between labels; a leading
/// dot is allowed, and ignored by browsers).
pub(super) fn validate_domain(domain: &str) -> Result<(), ConfigError> {
    let invalid = |why| Err(ConfigError::InvalidDomain { domain: domain.to_owned(), why });
    if domain.bytes().any(|b| b.is_ascii_control()) {
        return invalid("contains a control character (CR and LF would split the header)");
    }
    if domain.contains(';') {
        return invalid("contains ';', which would start another cookie attribute");
    }
    let host = domain.strip_prefix('.').unwrap_or(domain);
    if host.is_empty() {
        return invalid("empty");
    }
    if domain.len() > MAX_DOMAIN_LEN {
        return invalid("longer than a host name can be");
    }
    if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
        return invalid(
            "only ASCII letters, digits, '-' and '.' are allowed (an internationalized name in \
             its xn-- form)",
        );
    }
    if host.split('.').any(str::is_empty) {
        return invalid("has an empty label");
    }
    Ok(())
}

/// A token header's name is an HTTP field name (RFC 9110 token) that fits the associated data.
pub(super) fn validate_token_header(name: &str) -> Result<(), ConfigError> {
    let invalid = |why| Err(ConfigError::InvalidTokenHeader { name: name.to_owned(), why });
    if name.is_empty() {
        return invalid("empty");
    }
    if name.len() > MAX_NAME_LEN - TOKEN_NAME_PREFIX.len() {
        return invalid("longer than 193 bytes");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(allowed) {
        return invalid("only ASCII letters, digits and !#$%&'*+-.^_`|~ are allowed");
    }
    Ok(())
}

/// A deployment purpose is 1 to 200 bytes of printable ASCII (it is bound into the AAD with a
/// one-byte length, and FORMAT.md keeps it to text every implementation spells alike).
pub(super) fn validate_purpose(purpose: &str) -> Result<(), ConfigError> {
    if purpose.is_empty() || purpose.len() > MAX_PURPOSE_LEN {
        return Err(ConfigError::Invalid("a purpose must be 1 to 200 bytes long"));
    }
    if !purpose.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(ConfigError::Invalid("a purpose must be printable ASCII"));
    }
    Ok(())
}

/// A cookie name is an RFC 6265 token; we also refuse `.`, which separates the chunk index.
pub(super) fn validate_name(name: &str) -> Result<(), ConfigError> {
    let invalid = |why| Err(ConfigError::InvalidName { name: name.to_owned(), why });
    if name.is_empty() {
        return invalid("empty");
    }
    let separator = |c: char| "()<>@,;:\\\"/[]?={} \t.".contains(c);
    if name.chars().any(|c| !c.is_ascii() || c.is_ascii_control() || separator(c)) {
        return invalid("only ASCII letters, digits and !#$%&'*+-^_`|~ are allowed");
    }
    Ok(())
}
