//! Seeded token-heavy session states, beside the corpus: what an OIDC login, an API console and
//! a "recently viewed" list keep in a session. Their bulk is random bytes (JWT signatures,
//! opaque tokens, UUIDs), which no compressor can shrink except by the entropy coding of their
//! alphabet, so they show what sealing costs when compression barely pays.
//!
//! Each state is a JSON object string, a function of its seed only (the same on every machine),
//! made with [`super::Rng`]; no one's real data.

use super::Rng;

/// Seed of every generated state, so that runs and commits compare the same bytes.
pub const SEED: u64 = 0x5eed_0027_0000_0001;

/// `(name, JSON text)` of every generated state, in a fixed order.
pub fn states() -> Vec<(String, String)> {
    let mut rng = Rng(SEED);
    vec![
        ("gen_oidc.json".to_owned(), oidc(&mut rng)),
        ("gen_api_keys.json".to_owned(), api_keys(&mut rng, 24)),
        ("gen_uuids.json".to_owned(), uuids(&mut rng, 64)),
    ]
}

/// Standard base64url without padding of `bytes` (a JWT's segments are this).
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// A signed-looking JWT: base64url JSON header and claims, then `signature` random bytes.
fn jwt(rng: &mut Rng, claims: &serde_json::Value, signature: usize) -> String {
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": rng.token(22)});
    let random: Vec<u8> = (0..signature).map(|_| rng.next() as u8).collect();
    format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes()),
        base64url(&random)
    )
}

fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next(), rng.next());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        a >> 16 & 0xffff,
        a & 0xfff,
        (b >> 48 & 0x3fff) | 0x8000,
        b & 0xffff_ffff_ffff
    )
}

/// An OIDC login: ID, access and refresh tokens (about 2 KB of JSON).
fn oidc(rng: &mut Rng) -> String {
    let subject = uuid(rng);
    let issued = 1_800_000_000u64 + rng.below(86_400);
    let id_claims = serde_json::json!({
        "iss": "https://login.example.com/", "sub": subject, "aud": rng.token(32),
        "iat": issued, "exp": issued + 3600, "nonce": rng.token(43),
        "email": "user@example.com", "email_verified": true, "name": "Example User",
    });
    let access_claims = serde_json::json!({
        "iss": "https://login.example.com/", "sub": subject, "aud": "https://api.example.com",
        "iat": issued, "exp": issued + 900, "scope": "openid profile email orders:read",
        "jti": uuid(rng), "azp": rng.token(32),
    });
    serde_json::json!({
        "user_id": subject,
        "id_token": jwt(rng, &id_claims, 256),
        "access_token": jwt(rng, &access_claims, 256),
        "refresh_token": rng.token(86),
        "expires_at": issued + 900,
        "csrf": rng.token(43),
    })
    .to_string()
}

/// An API console: `count` named keys, each an opaque token with its prefix and dates.
fn api_keys(rng: &mut Rng, count: usize) -> String {
    let keys: Vec<_> = (0..count)
        .map(|i| {
            serde_json::json!({
                "id": uuid(rng),
                "name": format!("key {i}"),
                "token": format!("sk_live_{}", rng.token(48)),
                "created": 1_790_000_000u64 + rng.below(10_000_000),
            })
        })
        .collect();
    serde_json::json!({ "user_id": uuid(rng), "csrf": rng.token(43), "keys": keys }).to_string()
}

/// A "recently viewed" list of `count` product UUIDs.
fn uuids(rng: &mut Rng, count: usize) -> String {
    let viewed: Vec<String> = (0..count).map(|_| uuid(rng)).collect();
    serde_json::json!({ "user_id": uuid(rng), "recently_viewed": viewed, "csrf": rng.token(43) })
        .to_string()
}
