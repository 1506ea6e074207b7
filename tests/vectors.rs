//! The committed test vectors (`test_vectors/v1.json`) are exactly what the seeded generator
//! writes, every valid vector opens to its expected session, and every must-fail vector is
//! rejected for its stated reason. The logic is the generator's own `--check`.

// The generator's `main` and its writing path are unused here.
#[allow(dead_code)]
#[path = "../examples/test_vectors.rs"]
mod test_vectors;

use serde_json::Value;
use test_vectors::{VECTORS_PATH, VectorFile, check, check_vectors};

fn committed() -> String {
    std::fs::read_to_string(VECTORS_PATH).expect("test_vectors/v1.json is committed")
}

#[test]
fn committed_vectors_check() {
    if let Err(failures) = check(&committed()) {
        panic!(
            "test_vectors/v1.json does not check:\n  {}\nRegenerate it with `cargo run --example \
             test_vectors -- --write` only if the format change is intended.",
            failures.join("\n  ")
        );
    }
}

#[test]
fn every_rejection_reason_has_a_vector() {
    let file: VectorFile = serde_json::from_str(&committed()).unwrap();
    let named: Vec<&str> =
        file.vectors.iter().filter_map(|v| v.expected_error.as_deref()).collect();
    for reason in [
        "malformed",
        "unsupported_version",
        "wrong_mode",
        "unknown_key",
        "forged",
        "idle_expired",
        "absolute_expired",
        "issued_in_future",
        "too_large",
    ] {
        assert!(named.contains(&reason), "no must-fail vector expects {reason}");
    }
    assert!(file.vectors.iter().filter(|v| v.expected.is_some()).count() >= 8);
}

/// The checks of each vector catch changes on their own, not only the byte comparison.
#[test]
fn altered_vectors_are_caught() {
    let file: VectorFile = serde_json::from_str(&committed()).unwrap();
    let altered = |change: &dyn Fn(&mut VectorFile)| {
        let mut copy = file.clone();
        change(&mut copy);
        check_vectors(&copy).is_err()
    };
    let valid = file.vectors.iter().position(|v| v.name == "small_state").unwrap();
    let invalid = file.vectors.iter().position(|v| v.name == "idle_expired").unwrap();

    assert!(check_vectors(&file).is_ok());
    assert!(altered(&|f| {
        let state = &mut f.vectors[valid].expected.as_mut().unwrap().state;
        state.insert("user_id".to_owned(), Value::from(43));
    }));
    assert!(altered(&|f| f.vectors[valid].expected.as_mut().unwrap().issued_at += 1));
    assert!(altered(&|f| f.vectors[valid].expected.as_mut().unwrap().compressed = true));
    assert!(altered(&|f| f.vectors[valid].now += 3600));
    assert!(altered(&|f| f.vectors[valid].keys[0].secret_hex.replace_range(0..2, "ff")));
    assert!(altered(&|f| f.vectors[valid].cookie_name = "__Host-other".to_owned()));
    assert!(altered(&|f| f.vectors[invalid].expected_error = Some("forged".to_owned())));
    assert!(altered(&|f| f.vectors[invalid].now -= 1));

    let text = committed().replacen("\"user_id\": 42", "\"user_id\": 41", 1);
    assert!(check(&text).is_err());
}
