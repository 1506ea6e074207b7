//! docs/deploy.md, run: every `sh` block of the guide in order in a scratch directory (with the
//! `sealed-session` CLI on `PATH`), and the Kubernetes parts that can run without a cluster: a
//! ring in a directory laid out as a Secret volume, reloaded across the kubelet's `..data` swap,
//! and `scripts/cronjob.sh` (the rotation CronJob with the kubelet played locally).
#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use sealed_session::keys::file::{KeyRingFile, load_file_at};
use sealed_session::{Key, KeyId, KeyRing, SharedKeyRing};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn path_with_cli() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_sealed-session")).parent().unwrap().to_owned();
    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())
}

/// The guide's `sh` blocks, in order.
fn sh_blocks() -> Vec<String> {
    let guide = std::fs::read_to_string(Path::new(REPO).join("docs/deploy.md")).unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in guide.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

fn bash(dir: &Path, script: &str) -> std::process::Output {
    Command::new("bash")
        .args(["-euo", "pipefail", "-c", script])
        .current_dir(dir)
        .env("PATH", path_with_cli())
        .env("REPO", REPO)
        .output()
        .unwrap()
}

#[test]
fn every_sh_block_of_the_guide_runs() {
    let dir = tempfile::tempdir().unwrap();
    let blocks = sh_blocks();
    assert!(blocks.len() >= 5, "{} blocks", blocks.len());
    for block in &blocks {
        let out = bash(dir.path(), block);
        assert!(
            out.status.success(),
            "{block}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // What the blocks left behind: a scheduled ring, and its copy in a Secret-like volume.
    let ring = load_file_at(dir.path().join("volume/ring.json"), SystemTime::now()).unwrap();
    assert!(ring.schedule().is_some());
}

/// Publishes `ring` into `volume` as the kubelet updates a Secret volume.
fn publish(volume: &Path, text: &str, stamp: &str) {
    let dir = volume.join(stamp);
    std::fs::create_dir(&dir).unwrap();
    let file = dir.join("ring.json");
    std::fs::write(&file, text).unwrap();
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o400)).unwrap();
    let tmp = volume.join("..data_tmp");
    symlink(stamp, &tmp).unwrap();
    std::fs::rename(&tmp, volume.join("..data")).unwrap();
    let link = volume.join("ring.json");
    if std::fs::symlink_metadata(&link).is_err() {
        symlink("..data/ring.json", &link).unwrap();
    }
}

fn ring_with(id: u32) -> String {
    let mut ring = KeyRing::new();
    let past = SystemTime::now() - Duration::from_secs(60);
    ring.insert(KeyId(id), Key::generate(), past, past).unwrap();
    KeyRingFile::from_ring(&ring).to_json().to_string()
}

fn wait_for(keys: &SharedKeyRing, id: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if keys.snapshot().contains(KeyId(id)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn a_data_swap_reloads_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let volume: PathBuf = dir.path().to_owned();
    publish(&volume, &ring_with(1), "..2026_01_01_00_00_00.1");
    let path = volume.join("ring.json");
    let keys = SharedKeyRing::new(load_file_at(&path, SystemTime::now()).unwrap());
    let _watch = keys.watch_file(&path, Duration::from_millis(20));
    // (swap, the key the ring must hold afterwards): a good swap loads; an invalid one keeps the
    // last good ring; the next good one loads again.
    let cases = [(ring_with(2), 2), ("{ not json".to_owned(), 2), (ring_with(3), 3)];
    for (n, (text, id)) in cases.into_iter().enumerate() {
        publish(&volume, &text, &format!("..2026_01_01_00_00_0{n}.2"));
        assert!(wait_for(&keys, id), "after swap {n} the ring must hold key {id}");
        if n == 1 {
            // The watcher has seen the invalid file once it reports the error.
            let started = Instant::now();
            while keys.health(SystemTime::now()).last_reload_error.is_none() {
                assert!(started.elapsed() < Duration::from_secs(10), "the error is never reported");
                std::thread::sleep(Duration::from_millis(10));
            }
            assert!(keys.snapshot().contains(KeyId(2)), "an invalid swap keeps the ring");
        }
    }
}

#[test]
fn the_cronjob_script_publishes_only_when_the_ring_changed() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!("{REPO}/scripts/cronjob.sh");
    let faketime = "/usr/bin/faketime";
    assert!(
        Path::new(faketime).is_file(),
        "{faketime} is missing: install the Debian package `faketime` (bash scripts/install-deps.sh)"
    );
    // The job runs at `clock` from now (the script and the CLI under `faketime`), so the test
    // does not depend on how fast a loaded machine runs it.
    let run = |setup: &str, clock: &str| {
        let job = format!("{faketime} -f {clock} bash {script} ring.json volume");
        let out = bash(dir.path(), &format!("{setup}\n{job}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // (setup before the run, the job's clock, what the script must say)
    let cases = [
        (
            "sealed-session keys init --file ring.json\nsealed-session keys schedule --file ring.json --lead 1m --lifetime 1h --absolute-timeout 0s --clock-skew 0s",
            "+0s",
            "published",
        ),
        ("", "+0s", "unchanged"),
        // Ten minutes later the scheduled key seals and the hand-made one has retired: the
        // command drops it, the job publishes the new file; run again, nothing is due.
        ("", "+10m", "published"),
        ("", "+10m", "unchanged"),
    ];
    for (setup, clock, expected) in cases {
        let out = run(setup, clock);
        assert!(out.lines().last().unwrap().contains(expected), "{setup:?} at {clock}: {out}");
    }
    let source = std::fs::read(dir.path().join("ring.json")).unwrap();
    assert_eq!(std::fs::read(dir.path().join("volume/ring.json")).unwrap(), source);
    assert!(std::fs::symlink_metadata(dir.path().join("volume/..data")).unwrap().is_symlink());
}
