//! The session state every contender stores at login, and the bodies every contender answers,
//! so that all of them move the same data and the same number of bytes.

use serde::{Deserialize, Serialize};

/// The user every login logs in as; the read route answers `hello, USER`.
pub const USER: &str = "bench";

/// A CSRF token as applications keep one: 32 random bytes, hex-encoded (fixed here so every run
/// stores the same bytes).
pub const CSRF_TOKEN: &str = "9f2c4e7a1b3d5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8";

/// One line of the cart.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CartItem {
    pub sku: u32,
    pub name: String,
    pub qty: u32,
    pub price_cents: u32,
}

/// Product names of the cart, one per line.
const PRODUCTS: [&str; 10] =
    ["Cup", "Towel", "Board", "Kettle", "Socks", "Glass jar", "Apron", "Pan", "Salt mill", "Tin"];

/// A 10-line cart, about 575 bytes as JSON.
pub fn cart() -> Vec<CartItem> {
    (0u32..)
        .zip(PRODUCTS)
        .map(|(i, name)| CartItem {
            sku: 104_729 + 7_919 * i,
            name: name.to_owned(),
            qty: 1 + i % 3,
            price_cents: 1_299 + 250 * i,
        })
        .collect()
}

/// The whole state in one value, for the contender that keeps one JSON cookie (axum-extra's
/// `PrivateCookieJar`): what the others keep under the keys `user`, `cart`, `csrf`, `n`, `blob`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Whole {
    pub user: String,
    pub cart: Vec<CartItem>,
    pub csrf: String,
    #[serde(default)]
    pub n: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blob: Option<serde_json::Value>,
}

impl Whole {
    /// The state at login.
    pub fn login() -> Whole {
        Whole { user: USER.to_owned(), cart: cart(), csrf: CSRF_TOKEN.to_owned(), n: 0, blob: None }
    }
}

/// The read route's body for `user`.
pub fn read_body(user: Option<&str>) -> String {
    format!("hello, {}\n", user.unwrap_or("nobody"))
}

/// The write route's body for the counter's new value (fixed width: the same size every time).
pub fn write_body(n: u64) -> String {
    format!("{n:>20}\n")
}

/// The login route's body.
pub const LOGIN_BODY: &str = "logged in\n";

/// The size probe's body once the value is stored.
pub const PROBE_BODY: &str = "stored\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cart_is_about_575_bytes_of_json() {
        let len = serde_json::to_string(&cart()).unwrap().len();
        assert!((560..=590).contains(&len), "cart is {len} bytes of JSON");
        assert_eq!(CSRF_TOKEN.len(), 64);
    }
}
