//! A value's content never appears in a [`ValueError`]: serde's messages quote what they refuse
//! (``unknown variant `<value>` ``, ``invalid type: string "<value>"``), and a session holds
//! CSRF and OAuth tokens that an application may log with the error.

use std::error::Error as _;
use std::net::IpAddr;

use sealed_session::{Session, ValueError};
use serde::{Deserialize, Serialize, Serializer};

/// What the tests store, and look for in every error.
const SECRET: &str = "S3cr3t-Tok3n-8f2a";
/// A secret number (as a PIN or an account number would be).
const SECRET_NUMBER: u64 = 987_654_321;
const KEY: &str = "csrf";

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
enum Role {
    Admin,
    User,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Profile {
    name: String,
}

/// Serializing it fails with a message quoting its content, as a custom `Serialize` might.
struct Refuses;

impl Serialize for Refuses {
    fn serialize<S: Serializer>(&self, _: S) -> Result<S::Ok, S::Error> {
        Err(serde::ser::Error::custom(format!("cannot serialize {SECRET}")))
    }
}

/// The error's every rendering: Display, Debug, and its sources.
fn renderings(error: &ValueError) -> Vec<String> {
    let mut texts = vec![error.to_string(), format!("{error:?}"), format!("{error:#?}")];
    let mut source = error.source();
    while let Some(inner) = source {
        texts.push(inner.to_string());
        texts.push(format!("{inner:?}"));
        source = inner.source();
    }
    texts
}

fn assert_reveals_nothing(what: &str, error: &ValueError, expected_why: &str) {
    for text in renderings(error) {
        assert!(!text.contains(SECRET), "{what}: the value leaked: {text}");
        assert!(!text.contains(&SECRET_NUMBER.to_string()), "{what}: the number leaked: {text}");
        assert!(text.contains(KEY), "{what}: the key is named: {text}");
    }
    match error {
        ValueError::Decode { key, why } | ValueError::Encode { key, why } => {
            assert_eq!((key.as_str(), *why), (KEY, expected_why), "{what}");
        }
        other => panic!("{what}: {other:?}"),
    }
}

type Store = fn(&mut Session) -> Result<(), ValueError>;
type Read = fn(&Session) -> Result<(), ValueError>;

#[test]
fn decode_errors_never_quote_the_value() {
    let text: Store = |session| session.insert_sensitive(KEY, SECRET);
    let number: Store = |session| session.insert(KEY, SECRET_NUMBER);
    let map: Store = |session| session.insert(KEY, std::collections::BTreeMap::from([(SECRET, 1)]));
    let another_type = "a value of another type";
    let refused = "a value the requested type does not accept";
    // (what, how the value is stored, how it is read, the category the error gives)
    let cases: [(&str, Store, Read, &str); 9] = [
        ("a string as char", text, |s| s.get::<char>(KEY).map(drop), refused),
        ("a string as enum", text, |s| s.get::<Role>(KEY).map(drop), "an unknown enum variant"),
        ("a string as IpAddr", text, |s| s.get::<IpAddr>(KEY).map(drop), "an unknown enum variant"),
        ("a string as u64", text, |s| s.get::<u64>(KEY).map(drop), another_type),
        ("a string as bool", text, |s| s.get::<bool>(KEY).map(drop), another_type),
        ("a string as struct", text, |s| s.get::<Profile>(KEY).map(drop), another_type),
        ("a number as String", number, |s| s.get::<String>(KEY).map(drop), another_type),
        ("a number as u8", number, |s| s.get::<u8>(KEY).map(drop), refused),
        (
            "a map key as a struct field",
            map,
            |s| s.get::<Profile>(KEY).map(drop),
            "a struct with an unknown field",
        ),
    ];
    for (what, store, read, why) in cases {
        let mut session = Session::new();
        store(&mut session).expect("stores");
        let error = read(&session).expect_err(what);
        assert_reveals_nothing(what, &error, why);
    }
}

#[test]
fn encode_errors_never_quote_the_value() {
    let mut session = Session::new();
    let error = session.insert(KEY, &Refuses).expect_err("Refuses does not serialize");
    let why = "the type's Serialize implementation failed";
    assert_reveals_nothing("a failing Serialize", &error, why);
}
