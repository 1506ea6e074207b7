//! The committed test vectors (`test_vectors/v1.json` and `v1-extra.json`) are exactly what the
//! seeded generator writes, every valid vector opens to its expected session, and every
//! must-fail vector is rejected for its stated reason. The logic is the generator's own `--check`.

// The generator's `main` and its writing path are unused here.
#[allow(dead_code)]
#[path = "../examples/test_vectors.rs"]
mod test_vectors;

use serde_json::Value;
use test_vectors::{EXTRA_PATH, VECTORS_PATH, VectorFile, check, check_extra, check_vectors};

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

fn committed_extra() -> String {
    std::fs::read_to_string(EXTRA_PATH).expect("test_vectors/v1-extra.json is committed")
}

#[test]
fn committed_extra_vectors_check() {
    if let Err(failures) = check_extra(&committed_extra()) {
        panic!(
            "test_vectors/v1-extra.json does not check:\n  {}\nRegenerate it with `cargo run \
             --example test_vectors -- --write` only if the format change is intended.",
            failures.join("\n  ")
        );
    }
}

/// Each point FORMAT.md had left to guess has a vector, valid and must-fail where both exist.
#[test]
fn extra_vectors_cover_each_point() {
    let file: VectorFile = serde_json::from_str(&committed_extra()).unwrap();
    let outcome = |name: &str| {
        let vector = file.vectors.iter().find(|v| v.name == name);
        let vector = vector.unwrap_or_else(|| panic!("no vector named {name}"));
        vector.expected_error.clone().unwrap_or_else(|| "valid".to_owned())
    };
    for (name, want) in [
        ("section_key_255_bytes", "valid"),
        ("section_key_256_bytes", "malformed"),
        ("sensitive_key_256_bytes", "malformed"),
        ("nested_map_key_300_bytes", "valid"),
        ("zstd_truncated_declaring_65537", "malformed"),
        ("zstd_trailing_byte_declaring_65537", "malformed"),
        ("zstd_declaring_65537", "too_large"),
        ("zstd_with_checksum", "valid"),
        ("zstd_checksum_mismatch", "malformed"),
        ("zstd_dictionary_id", "malformed"),
        ("zstd_skippable_frame", "malformed"),
        ("dictionary_compressed", "valid"),
        ("dictionary_with_sensitive", "valid"),
        ("dictionary_flag_alone", "malformed"),
        ("dictionary_frame_without_its_flag", "malformed"),
        ("dictionary_frame_names_its_id", "malformed"),
        ("compressed_empty_body", "malformed"),
        ("depth_64", "valid"),
        ("depth_65", "malformed"),
        ("nested_map_key_depth_64", "valid"),
        ("nested_map_key_depth_65", "malformed"),
        ("overlong_varint", "valid"),
        ("ten_byte_varint", "valid"),
        ("varint_tenth_byte_over_1", "malformed"),
        ("time_overflow", "malformed"),
        ("reserved_flag_bit_5", "malformed"),
        ("body_len_beyond_frame", "malformed"),
        ("duplicate_key_across_sections", "malformed"),
        ("duplicate_key_string_widths", "malformed"),
        ("non_utf8_key", "malformed"),
        ("uncompressed_state_over_max", "too_large"),
        ("signed_frame_changed", "forged"),
        ("absolute_expiry_edge", "valid"),
        ("session_idle_timeout_sealed", "valid"),
        ("session_idle_timeout_longer", "valid"),
        ("session_idle_timeout_edge", "valid"),
        ("session_idle_timeout_expired", "idle_expired"),
        ("session_without_idle_bound", "valid"),
        ("session_without_idle_bound_absolute", "absolute_expired"),
        ("session_idle_timeout_missing", "malformed"),
        ("browser_session_flag", "valid"),
        ("browser_session_idle_expired", "idle_expired"),
        ("browser_session_with_idle_timeout", "valid"),
        ("cookie_header_32768_bytes", "valid"),
        ("cookie_header_32769_bytes", "too_large"),
        ("cookies_128", "valid"),
        ("cookies_129", "too_large"),
        ("fourth_variant_opens", "valid"),
        ("fifth_variant_not_tried", "unknown_key"),
        ("max_chunks_32", "valid"),
        ("pieces_any_length", "valid"),
        ("current_key_selection", "valid"),
        ("retired_key", "unknown_key"),
        ("msgpack_json_mapping", "valid"),
        ("header_token_trimmed", "valid"),
        ("header_token_chunk_count_2", "malformed"),
        ("header_token_over_budget", "too_large"),
        ("cookie_token_in_header", "forged"),
        ("header_token_in_cookie", "forged"),
    ] {
        assert_eq!(outcome(name), want, "{name}");
    }
    let rings = &file.key_ring_files;
    assert!(rings.iter().any(|r| r.form == "file" && r.expected.is_some()));
    assert!(rings.iter().any(|r| r.form == "env" && r.text.starts_with("ssk1.")));
    assert!(rings.iter().filter(|r| r.expected_error.is_some()).count() >= 8);
}

/// The extra checks catch changes on their own: the JSON mapping is type-aware, the current
/// key and the key ring files are checked.
#[test]
fn altered_extra_vectors_are_caught() {
    let file: VectorFile = serde_json::from_str(&committed_extra()).unwrap();
    let altered = |change: &dyn Fn(&mut VectorFile)| {
        let mut copy = file.clone();
        change(&mut copy);
        check_vectors(&copy).is_err()
    };
    let find = |name: &str| file.vectors.iter().position(|v| v.name == name).unwrap();
    let (mapping, selection) = (find("msgpack_json_mapping"), find("current_key_selection"));

    assert!(check_vectors(&file).is_ok());
    assert!(altered(&|f| {
        let state = &mut f.vectors[mapping].expected.as_mut().unwrap().state;
        state.insert("float_integral".to_owned(), Value::from(1));
    }));
    assert!(altered(&|f| {
        let state = &mut f.vectors[mapping].expected.as_mut().unwrap().state;
        state.insert("u64_max".to_owned(), Value::from(u64::MAX));
    }));
    assert!(altered(&|f| {
        let expected = f.vectors[selection].expected.as_mut().unwrap();
        expected.current_key_id = Some(expected.current_key_id.unwrap() - 1);
    }));
    assert!(altered(&|f| f.key_ring_files[0].expected.as_mut().unwrap().current_key_id += 1));
    assert!(altered(&|f| f.key_ring_files[0].text =
        f.key_ring_files[0].text.replacen("\"id\": ", "\"id\": 9", 1)));
    let error = file.key_ring_files.iter().position(|r| r.expected_error.is_some()).unwrap();
    assert!(altered(&|f| f.key_ring_files[error].expected_error = Some("empty".to_owned())));
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
