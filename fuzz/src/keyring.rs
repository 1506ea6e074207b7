//! Key ring files and environment values: arbitrary bytes (lossy UTF-8) parsed as a key ring
//! file's JSON (`KeyRingFile::parse`, then `to_ring`) and as an environment value
//! (`parse_env_at`), at [`now`].
//!
//! Invariants, for every input:
//!
//! * parsing never panics;
//! * an error's `Display` (and a parsed file's `Debug`) never shows a secret: no 16-character
//!   run of a `"secret"` string in the input (or in the JSON an `ssk1.` value decodes to)
//!   appears in it (only runs of base64url characters with a letter count: anything else
//!   could be the message's own words, numbers or renderings, which an input can copy);
//! * a ring that loads has an active key, its ids and secrets are those of the file's entries,
//!   and it survives export: `from_ring` then `to_json` (and `to_env`) parse back to a ring with
//!   the same ids, times and secrets;
//! * a torn file, the sample ring's file half-way through a same-size rewrite in place with
//!   another ring (runs of old and new bytes, their lengths given by the input's bytes), loads,
//!   if at all, as exactly one of the two rings: the `sha256` checksum lets no mix through.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use sealed_session::KeyRing;
use sealed_session::keys::file::{self, ENV_PREFIX, KeyRingFile};

use crate::now;

/// The length of the secret fragments looked for in messages.
const WINDOW: usize = 16;

/// The raw contents (escapes left as they are) of every string that follows a `"secret"` key
/// in `text`: a scan, not a parse, so it also finds secrets in JSON that does not parse.
pub fn secret_strings(text: &str) -> Vec<String> {
    let mut secrets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("\"secret\"") {
        rest = &rest[at + "\"secret\"".len()..];
        let after = rest.trim_start();
        let Some(after) = after.strip_prefix(':') else { continue };
        let Some(body) = after.trim_start().strip_prefix('"') else { continue };
        let mut end = body.len();
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        secrets.push(body[..end].to_owned());
    }
    secrets
}

/// Panics if `shown` contains a [`WINDOW`]-byte run without whitespace of any secret.
fn assert_no_secret(shown: &str, secrets: &[String], what: &str) {
    for run in shown.as_bytes().windows(WINDOW) {
        // Only runs that look like a secret (base64url, with a letter) count: the message's own
        // words, numbers and renderings (`KeyId(7),`, `created_at: 17...`) have spaces,
        // punctuation or no letter, and an input may copy them into a "secret". A run of a real
        // base64url secret without a letter has a chance of about 2^-38.
        let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        if !run.iter().all(base64url) || !run.iter().any(u8::is_ascii_alphabetic) {
            continue;
        }
        for secret in secrets {
            if secret.as_bytes().windows(WINDOW).any(|s| s == run) {
                panic!("{what} shows part of a secret: {shown:?}");
            }
        }
    }
}

/// Parses `data` both ways and asserts the invariants in the module docs.
pub fn check_keyring(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut secrets = secret_strings(&text);
    if let Some(encoded) = text.trim().strip_prefix(ENV_PREFIX)
        && let Ok(json) = BASE64.decode(encoded)
    {
        secrets.extend(secret_strings(&String::from_utf8_lossy(&json)));
    }
    secrets.retain(|secret| secret.len() >= WINDOW);

    match KeyRingFile::parse(&text) {
        Ok(parsed) => {
            assert_no_secret(&format!("{parsed:?}"), &secrets, "a file's Debug");
            match parsed.to_ring(now()) {
                Ok(ring) => {
                    check_entries(&parsed, &ring);
                    check_export(&ring);
                }
                Err(error) => assert_no_secret(&error.to_string(), &secrets, "an error"),
            }
        }
        Err(error) => assert_no_secret(&error.to_string(), &secrets, "an error"),
    }
    match file::parse_env_at(&text, now()) {
        Ok(ring) => check_export(&ring),
        Err(error) => assert_no_secret(&error.to_string(), &secrets, "an error"),
    }
    check_torn(data);
}

/// The sample ring's file rewritten in place with [`other_ring`]'s (same size), torn: the
/// file is made of runs taken from the new and the old file in turn, run lengths given by the
/// input's bytes (each byte + 1), the last run to the end. If it loads with a checksum, it is
/// exactly one of the two rings.
fn check_torn(data: &[u8]) {
    let rings = [sample_ring(), other_ring()];
    let [old, new] = rings.each_ref().map(|ring| KeyRingFile::from_ring(ring).to_json());
    assert_eq!(old.len(), new.len(), "the two rings' files must have the same size");
    let (old, new) = (old.as_bytes(), new.as_bytes());
    let mut torn = Vec::with_capacity(old.len());
    let mut runs = data.iter().map(|byte| usize::from(*byte) + 1);
    let mut from_new = true;
    while torn.len() < old.len() {
        let end = runs.next().map_or(old.len(), |run| old.len().min(torn.len() + run));
        let source = if from_new { new } else { old };
        torn.extend_from_slice(&source[torn.len()..end]);
        from_new = !from_new;
    }
    let Ok(parsed) = KeyRingFile::parse(&String::from_utf8_lossy(&torn)) else { return };
    let Ok(ring) = parsed.to_ring(now()) else { return };
    assert!(parsed.sha256.is_some(), "both files have a checksum; a mix cannot lose it");
    let same = |other: &KeyRing| {
        ring.keys().eq(other.keys()) && ring.keys().all(|k| ring.secret(k.id) == other.secret(k.id))
    };
    assert!(rings.iter().any(same), "a torn file loaded a ring that is neither version");
}

/// The ring holds the file's keys: same ids in the same order, same secrets.
fn check_entries(parsed: &KeyRingFile, ring: &KeyRing) {
    let ids: Vec<u32> = ring.keys().map(|info| info.id.0).collect();
    let file_ids: Vec<u32> = parsed.keys.iter().map(|entry| entry.id).collect();
    assert_eq!(ids, file_ids, "the ring's ids are not the file's");
    for entry in &parsed.keys {
        let secret = ring.secret(sealed_session::KeyId(entry.id)).expect("listed id");
        let decoded = BASE64.decode(entry.secret.as_bytes()).expect("a loaded secret decodes");
        assert!(secret.expose_secret()[..] == decoded[..], "key {}: secret changed", entry.id);
    }
    assert!(ring.current_id(now()).is_some(), "a loaded ring has no active key");
}

/// Exporting the ring (file and environment forms) and loading it again changes nothing.
fn check_export(ring: &KeyRing) {
    let exported = KeyRingFile::from_ring(ring);
    let from_json = KeyRingFile::parse(&exported.to_json()).expect("an exported ring parses");
    let from_json = from_json.to_ring(now()).expect("an exported ring loads");
    let from_env = file::parse_env_at(&exported.to_env(), now()).expect("an exported env loads");
    for back in [from_json, from_env] {
        let infos: Vec<_> = ring.keys().collect();
        assert_eq!(back.keys().collect::<Vec<_>>(), infos, "export changed ids or times");
        for info in infos {
            assert!(back.secret(info.id) == ring.secret(info.id), "export changed a secret");
        }
    }
}

/// A real ring, for the seeds: three keys with fixed secrets: an old one, the current one, and
/// one still pending at [`now`].
pub fn sample_ring() -> KeyRing {
    use sealed_session::{Key, KeyId};
    use std::time::Duration;
    let mut ring = KeyRing::new();
    let t = |secs: u64| now() - Duration::from_secs(secs);
    ring.insert(KeyId(1), Key::from_bytes([0x11; 32]), t(7200), t(7200)).expect("valid");
    ring.insert(KeyId(2), Key::from_bytes([0x22; 32]), t(3600), t(60)).expect("valid");
    ring.insert(KeyId(3), Key::from_bytes([0x33; 32]), t(60), now() + Duration::from_secs(3600))
        .expect("valid");
    ring
}

/// [`sample_ring`] with other secrets: its file has the same size, so it can overwrite the
/// sample's in place.
pub fn other_ring() -> KeyRing {
    let mut ring = KeyRing::new();
    for info in sample_ring().keys() {
        let secret = sealed_session::Key::from_bytes([0x40 + info.id.0 as u8; 32]);
        ring.insert(info.id, secret, info.created_at, info.activates_at).expect("valid");
    }
    ring
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_ring_passes_both_ways() {
        let form = KeyRingFile::from_ring(&sample_ring());
        check_keyring(form.to_json().as_bytes());
        check_keyring(form.to_env().as_bytes());
        let secrets = secret_strings(&form.to_json());
        assert_eq!(secrets.len(), 3);
        assert!(secrets.iter().all(|s| s.len() == 43), "{secrets:?}");
    }

    #[test]
    fn torn_rewrites_are_checked() {
        // Every single cut (new bytes, then old), and alternating runs of every length.
        for cut in 0..=255u8 {
            check_torn(&[cut]);
            check_torn(&[cut; 64]);
        }
        check_torn(&[]);
    }

    #[test]
    fn errors_are_checked_for_secrets() {
        let secret = BASE64.encode([0x44u8; 16]);
        let text = format!(r#"{{"version":1,"keys":[{{"id":1,"secret":"{secret}","x":1}}]}}"#);
        check_keyring(text.as_bytes());
        check_keyring(b"{\"secret\": \"abc");
        check_keyring(b"ssk1.%%%");
    }

    #[test]
    fn times_past_the_platform_range_load() {
        // Found by this target: an activation time past what `SystemTime` can hold made
        // `to_ring` panic ("overflow when adding duration to instant").
        let secret = BASE64.encode([0x55u8; 32]);
        let text = format!(
            r#"{{"version":1,"keys":[{{"id":1,"secret":"{secret}","created_at":0,"activates_at":0}},
            {{"id":2,"secret":"{secret}","created_at":1,"activates_at":18018000000000003600}}]}}"#
        );
        let ring = KeyRingFile::parse(&text).unwrap().to_ring(now()).unwrap();
        assert_eq!(ring.current_id(now()), Some(sealed_session::KeyId(1)));
        check_keyring(text.as_bytes());
    }

    #[test]
    fn numbers_shown_are_not_secrets() {
        // Found by this target (harness false positives): a time in a file's `Debug` shared 16
        // characters ("999280105929053,") with a "secret" of digits and punctuation.
        let secrets = vec!["ERER180999280105929053,0172".to_owned()];
        assert_no_secret("created_at: 1719999280105929053, activates_at", &secrets, "Debug");
        // And a "secret" that copied the rendering of its own key's id.
        let secrets = vec!["IiIiKeyId(27758077),xx".to_owned()];
        assert_no_secret("KeyEntry { id: KeyId(27758077), secret: ..", &secrets, "Debug");
    }

    #[test]
    #[should_panic(expected = "shows part of a secret")]
    fn a_leaked_secret_is_caught() {
        let secrets = vec!["c2VjcmV0LXNlY3JldC1zZWNyZXQ".to_owned()];
        assert_no_secret("bad secret c2VjcmV0LXNlY3JldC1z here", &secrets, "an error");
    }
}
