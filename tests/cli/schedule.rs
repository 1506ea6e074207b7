//! (A module of `tests/cli.rs`, whose helpers it uses.) `sealed-session keys schedule` and `keys rotate --if-due`, run as processes (needs
//! `--features cli`): the scheduled command is idempotent, safe from many processes at once,
//! prints what it did and exits 0 when nothing was due; a root is replaced staged (nobody is
//! logged out) or at once (everybody under the old root is).
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

use sealed_session::keys::file::{KeyRingFile, load_file, load_file_at};
use sealed_session::{Key, KeyId, KeyRing, RotationPolicy, Schedule};

use super::{bin, keys, ring};

const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs()
}

/// Writes `ring` to `path` (mode 0600) as the CLI would: a ring with times of the test's
/// choosing, since the CLI reads the clock and has no option to set it.
fn write_ring(path: &Path, ring: &KeyRing) {
    std::fs::write(path, KeyRingFile::from_ring(ring).to_json().as_bytes()).unwrap();
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
}

/// A ring with a schedule (ids from 0x8000_0000) of `policy` whose period 0 activates at
/// `epoch`, and hand-made keys `(id, activation)`, taken at `now`.
fn scheduled_ring(
    epoch: SystemTime,
    policy: RotationPolicy,
    handmade: &[(u32, SystemTime)],
    now: SystemTime,
) -> KeyRing {
    let mut ring = KeyRing::new();
    for &(id, at) in handmade {
        ring.insert(KeyId(id), Key::generate(), at, at).unwrap();
    }
    let schedule = Schedule::new(Key::generate(), KeyId(0x8000_0000), epoch, policy).unwrap();
    ring.set_schedule(schedule, now).unwrap();
    ring
}

fn stdout(assert: assert_cmd::assert::Assert) -> String {
    String::from_utf8(assert.get_output().stdout.clone()).unwrap()
}

fn file_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn hand_made_ids(path: &Path) -> Vec<u64> {
    let keys = file_json(path)["keys"].as_array().unwrap().clone();
    keys.iter().map(|key| key["id"].as_u64().unwrap()).collect()
}

fn id_base(path: &Path) -> u64 {
    file_json(path)["schedule"]["id_base"].as_u64().unwrap()
}

/// Seals a state with the ring at `path`, returning the Cookie header a browser sends back.
fn sealed(path: &Path) -> String {
    let out = bin()
        .args(["seal", "--name", "session", "--keys"])
        .arg(path)
        .write_stdin(r#"{"user":"ada"}"#)
        .assert()
        .success();
    let lines = stdout(out);
    lines.lines().map(|l| l.split(';').next().unwrap().to_owned()).collect::<Vec<_>>().join("; ")
}

fn opens(path: &Path, header: &str) -> bool {
    let out = bin()
        .args(["open", "--name", "session", "--keys"])
        .arg(path)
        .args(["--cookie", header])
        .output()
        .unwrap();
    out.status.success()
}

#[test]
fn if_due_is_idempotent_and_safe_from_every_node_at_once() {
    let (_dir, path) = ring();
    // Without a schedule nothing is ever due: refused, so a misconfigured timer is noticed.
    keys(&path, &["rotate", "--if-due"]).code(4);
    let out = stdout(keys(&path, &["schedule", "--lead", "1h", "--lifetime", "30days"]).success());
    assert!(out.starts_with("scheduled "), "{out}");
    let before = std::fs::read(&path).unwrap();
    // Eight "nodes" run the command at once on the shared file: all succeed, none writes.
    let children: Vec<_> = (0..8)
        .map(|_| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("sealed-session"))
                .args(["keys", "rotate", "--if-due", "--file"])
                .arg(&path)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let run = child.wait_with_output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let text = String::from_utf8(run.stdout).unwrap();
        assert!(text.starts_with("nothing due in "), "{text}");
        assert!(text.contains("next ") && text.contains("seals from"), "{text}");
    }
    assert_eq!(std::fs::read(&path).unwrap(), before, "nothing due, nothing written");
    // The schedule is there once; a second `schedule` without a flag is refused.
    keys(&path, &["schedule"]).code(4);
}

#[test]
fn if_due_drops_the_hand_made_key_once_the_policy_retires_it() {
    let (_dir, path) = ring();
    let handmade = hand_made_ids(&path);
    // A lead of one second and no timeout: the hand-made key retires a second from now.
    keys(
        &path,
        &[
            "schedule",
            "--lead",
            "1s",
            "--lifetime",
            "1h",
            "--absolute-timeout",
            "0s",
            "--clock-skew",
            "0s",
        ],
    )
    .success();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = stdout(keys(&path, &["rotate", "--if-due"]).success());
    assert!(out.starts_with(&format!("retired key(s) {:08x} from ", handmade[0])), "{out}");
    assert_eq!(hand_made_ids(&path), Vec::<u64>::new());
    let current = format!("current key {:08x} (period 0)", id_base(&path));
    assert!(out.contains(&current), "{out}");
    // Again: nothing left to do.
    let out = stdout(keys(&path, &["rotate", "--if-due"]).success());
    assert!(out.starts_with("nothing due in "), "{out}");
    assert!(load_file(&path).is_ok());
}

#[test]
fn a_new_root_is_staged_and_an_emergency_one_is_immediate() {
    let cases = [
        // (flag, old session still opens, old root's keys kept as hand-made)
        ("--new-root", true, true),
        ("--emergency", false, false),
    ];
    for (flag, still_opens, kept) in cases {
        let (_dir, path) = ring();
        keys(&path, &["schedule", "--lead", "1s", "--lifetime", "1h"]).success();
        std::thread::sleep(std::time::Duration::from_millis(1100));
        let old_base = id_base(&path);
        let header = sealed(&path);
        assert!(opens(&path, &header));
        let out = stdout(keys(&path, &["schedule", flag]).success());
        assert!(out.starts_with("replaced "), "{out}");
        assert_ne!(id_base(&path), old_base, "{flag}: a new id block");
        assert_eq!(opens(&path, &header), still_opens, "{flag}");
        assert_eq!(hand_made_ids(&path).contains(&old_base), kept, "{flag}");
    }
}

#[test]
fn a_hand_made_key_never_takes_an_id_of_the_schedule() {
    let (_dir, path) = ring();
    keys(&path, &["schedule", "--lead", "1h", "--lifetime", "1day"]).success();
    let base = id_base(&path);
    keys(&path, &["rotate", "--activate-in", "2h"]).success();
    let ids = hand_made_ids(&path);
    assert_eq!(ids.len(), 2);
    assert!(ids.iter().all(|id| !(base..base + 65_536).contains(id)), "{ids:?} vs {base}");
    assert!(load_file(&path).is_ok());
}

#[test]
fn list_takes_retirement_from_the_schedules_policy() {
    let (_dir, path) = ring();
    let args = ["schedule", "--lead", "1s", "--lifetime", "1h", "--absolute-timeout", "5h"];
    keys(&path, &[&args[..], &["--clock-skew", "30s"]].concat()).success();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let listing: Value =
        serde_json::from_str(&stdout(keys(&path, &["list", "--json"]).success())).unwrap();
    // 5h + 2 x 30s, not the CLI's default absolute timeout of 12h.
    assert_eq!(listing["retire_after_secs"], 5 * 3600 + 60);
    let states: Vec<&str> =
        listing["keys"].as_array().unwrap().iter().map(|k| k["state"].as_str().unwrap()).collect();
    assert_eq!(states, ["accepted", "current"]);
}

/// `keys retire` of an id the schedule owns is refused (exit 4), names `keys schedule
/// --emergency`, and leaves the file as it was, whatever the key's state. On main the accepted
/// (with --force) and the pending rows printed "retired key …" and exited 0, while the key
/// stayed in service (a derived key cannot be removed; `KeyRing::remove`'s `false` was ignored).
#[test]
fn retire_refuses_a_key_the_schedule_owns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    // 30-day keys known 29 days ahead; period 1 took over two days ago: period 0 is accepted,
    // period 1 current, period 2 pending (for 28 days).
    let policy = RotationPolicy {
        lifetime: secs(30 * DAY),
        lead: secs(29 * DAY),
        retire_after: secs(7 * DAY),
    };
    let ring = scheduled_ring(now - secs(32 * DAY), policy, &[], now);
    write_ring(&path, &ring);
    let base = 0x8000_0000u32;
    // (id, extra arguments, what the key is now)
    let table: [(u32, &[&str], &str); 4] = [
        (base, &["--force"], "accepted"),
        (base + 1, &[], "current"),
        (base + 2, &[], "pending"),
        (base + 9, &[], "a later period's"),
    ];
    let before = std::fs::read(&path).unwrap();
    for (id, extra, what) in table {
        let id = format!("{id:08x}");
        let args = [&["retire", id.as_str()][..], extra].concat();
        let output = keys(&path, &args).code(4).get_output().clone();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains("keys schedule --emergency"), "{what} key {id}: {stderr}");
        assert!(output.stdout.is_empty(), "{what} key {id}");
        assert_eq!(std::fs::read(&path).unwrap(), before, "{what} key {id}: file changed");
    }
    let ring = load_file(&path).unwrap();
    assert!((0..3).all(|n| ring.contains(KeyId(base + n))), "{ring:?}");
}

/// `keys schedule --new-root` keeps only the old root's keys that activate before the new root's
/// first key: the old root's next key, known already but activating after the new epoch, is
/// left out. On main it was kept as a hand-made key and, activating later than the new root's
/// first key, sealed in its place (the E+25h row) until the new root's period 1, a whole key
/// lifetime later.
#[test]
fn a_new_root_leaves_out_the_old_roots_keys_that_activate_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.json");
    let now = SystemTime::now();
    // The old root's next change is 2.5 days away: after the new root's first key seals (2 days
    // from now), within the old lead of it.
    let policy = RotationPolicy {
        lifetime: secs(30 * DAY),
        lead: secs(2 * DAY),
        ..RotationPolicy::default()
    };
    let old_epoch = now - secs(30 * DAY) + secs(2 * DAY + 12 * HOUR);
    write_ring(&path, &scheduled_ring(old_epoch, policy, &[], now));
    keys(&path, &["schedule", "--new-root", "--lifetime", "30days", "--lead", "2days"]).success();
    let file = file_json(&path);
    let epoch = file["schedule"]["epoch"].as_u64().unwrap();
    let new_base = id_base(&path);
    for (label, after_epoch) in [("E+1h", HOUR), ("E+25h", 25 * HOUR), ("E+30d", 30 * DAY)] {
        let at = SystemTime::UNIX_EPOCH + secs(epoch + after_epoch);
        let current = load_file_at(&path, at).unwrap().current_id(at).unwrap();
        assert!(
            (new_base..new_base + 65_536).contains(&u64::from(current.0)),
            "{label}: {current} seals, not the new root's key"
        );
    }
    assert_eq!(hand_made_ids(&path), [0x8000_0000], "only the old root's current key is kept");
}

/// Replacing a root keeps the old schedule's policy unless a flag says otherwise, and the old
/// root's kept keys open for as long as the old policy said (a shorter retirement is raised to
/// it). An emergency root activates a clock skew in the past, so a node whose clock is behind
/// has a current key. On main every row got the CLI's defaults (90 days, 2 days, 12h 2m), the
/// old root's current key left the ring 12 hours after the new epoch while its sessions lived
/// 7 days, and the emergency epoch was "now".
#[test]
fn a_replaced_root_keeps_the_old_policy_unless_told_otherwise() {
    let old = RotationPolicy {
        lifetime: secs(10 * DAY),
        lead: secs(6 * HOUR),
        retire_after: secs(7 * DAY),
    };
    let short = ["--absolute-timeout", "1h", "--clock-skew", "0s"];
    // (flag, extra arguments, lifetime, lead, retire_after, epoch - the run's time)
    type Row<'a> = (&'a str, &'a [&'a str], u64, u64, u64, i64);
    let table: [Row; 5] = [
        ("--new-root", &[], 10 * DAY, 6 * HOUR, 7 * DAY, 6 * 3600),
        ("--new-root", &["--lifetime", "30days"], 30 * DAY, 6 * HOUR, 7 * DAY, 6 * 3600),
        ("--new-root", &short, 10 * DAY, 6 * HOUR, 7 * DAY, 6 * 3600),
        ("--emergency", &[], 10 * DAY, 6 * HOUR, 7 * DAY, -60),
        ("--emergency", &short, 10 * DAY, 6 * HOUR, HOUR, 0),
    ];
    for (flag, extra, lifetime, lead, retire_after, epoch_offset) in table {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let now = SystemTime::now();
        write_ring(&path, &scheduled_ring(now - secs(DAY), old, &[], now));
        let before = unix(SystemTime::now()) as i64;
        keys(&path, &[&["schedule", flag][..], extra].concat()).success();
        let after = unix(SystemTime::now()) as i64;
        let row = format!("{flag} {extra:?}");
        let schedule = file_json(&path)["schedule"].clone();
        let got = |field: &str| schedule[field].as_u64().unwrap();
        assert_eq!(
            (got("lifetime"), got("lead"), got("retire_after")),
            (lifetime, lead, retire_after),
            "{row}"
        );
        let epoch = got("epoch") as i64;
        assert!(
            (before + epoch_offset..=after + epoch_offset).contains(&epoch),
            "{row}: epoch {epoch}, run from {before} to {after}"
        );
        if flag == "--new-root" {
            // The old root's current key stops sealing at the new epoch; sessions it sealed
            // live 7 days after that (the old policy), and so must the key.
            let at = SystemTime::UNIX_EPOCH + secs(epoch as u64 + 7 * DAY - 60);
            assert!(load_file_at(&path, at).unwrap().contains(KeyId(0x8000_0000)), "{row}");
        }
    }
}

/// `keys retire` on a scheduled ring judges "safe" by the schedule's retirement, as `keys list`
/// does, unless --absolute-timeout or --clock-skew is given; and both commands agree row by
/// row. On main `retire` used the flags' defaults (12h + 2 x 1m) on the first row and retired,
/// without --force, a key `keys list` showed as unsafe for six more days; and `list` ignored
/// the flags given on the second.
#[test]
fn retire_on_a_scheduled_ring_waits_for_the_schedules_retirement() {
    // (timeout flags, retiring key 1 refused without --force)
    let table: [(&[&str], bool); 3] = [
        (&[], true),
        (&["--absolute-timeout", "12h"], false),
        (&["--absolute-timeout", "6days"], true),
    ];
    for (flags, refused) in table {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ring.json");
        let now = SystemTime::now();
        // Hand-made key 1 was superseded by period 0 a day ago; the schedule retires it 7
        // days after that.
        let policy = RotationPolicy {
            lifetime: secs(30 * DAY),
            lead: secs(DAY),
            retire_after: secs(7 * DAY),
        };
        let ring = scheduled_ring(now - secs(DAY), policy, &[(1, now - secs(2 * DAY))], now);
        write_ring(&path, &ring);
        let listing: Value = serde_json::from_str(&stdout(
            keys(&path, &[&["list", "--json"][..], flags].concat()).success(),
        ))
        .unwrap();
        assert_eq!(listing["keys"][0]["id"], 1);
        assert_eq!(listing["keys"][0]["safe_to_retire_now"], !refused, "{flags:?}: list");
        let retire = keys(&path, &[&["retire", "1"][..], flags].concat());
        if refused {
            retire.code(4);
            assert!(load_file(&path).unwrap().contains(KeyId(1)), "{flags:?}");
        } else {
            retire.success();
            assert!(!load_file(&path).unwrap().contains(KeyId(1)), "{flags:?}");
        }
    }
}
