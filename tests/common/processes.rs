//! Real processes for the system tests (`tests/browser.rs`, `tests/fleet.rs`): the demo binary
//! (built and found as `tests/demo.rs` does it), external tools that must be installed (a
//! missing one fails the test, never skips it; `scripts/install-deps.sh` installs them), free
//! loopback ports, and a guard that kills a child process when the test ends, failing or not.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// What the demo prints once it listens.
pub const LISTENING: &str = "sealed-session demo listening on ";
/// How long the demo may take to print its URL once built.
const STARTUP: Duration = Duration::from_secs(30);

/// The path of a tool the test needs, which must exist: the test fails (it does not skip) when
/// it is missing, naming the package that provides it.
pub fn require_tool(path: &str, package: &str) -> PathBuf {
    let path = PathBuf::from(path);
    assert!(
        path.is_file(),
        "{} is missing: install the Debian package `{package}` (bash scripts/install-deps.sh)",
        path.display()
    );
    path
}

/// A port of 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a bound address").port()
}

/// Waits until something accepts connections on `127.0.0.1:port`, or panics after `within`.
pub fn wait_for_port(port: u16, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {addr} within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The target directory this test runs from (`<target>/<profile>/deps/<test>`), for artifacts.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("<target>/<profile>/deps");
    profile_dir.parent().expect("<target>").to_path_buf()
}

/// The demo's binary (the workspace package `sealed-session-demo`), built by cargo with the
/// `redis` feature when this test was built with it, in this test's target directory and
/// profile (as `tests/demo.rs` builds it).
pub fn build_demo() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let mut command = Command::new(env!("CARGO"));
    command.arg("build").arg("--manifest-path").arg(&manifest);
    command.args(["-p", "sealed-session-demo", "--message-format", "json-render-diagnostics"]);
    if cfg!(feature = "redis") {
        command.args(["--features", "redis"]);
    }
    let exe = std::env::current_exe().expect("the test's own path");
    let deps = exe.parent().filter(|dir| dir.ends_with("deps"));
    if let Some(profile_dir) = deps.and_then(Path::parent) {
        if profile_dir.ends_with("release") {
            command.arg("--release");
        }
        if let Some(target_dir) = profile_dir
            .parent()
            .filter(|_| profile_dir.ends_with("debug") || profile_dir.ends_with("release"))
        {
            command.arg("--target-dir").arg(target_dir);
        }
    }
    let output = command.stderr(Stdio::inherit()).output().expect("running cargo build");
    assert!(output.status.success(), "building the demo failed: {:?}", output.status);
    let stdout = String::from_utf8(output.stdout).expect("cargo prints UTF-8");
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == "demo")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo reports the demo's executable")
}

/// A child process killed (SIGKILL) and reaped when dropped.
pub struct Guard {
    pub child: Child,
    pub what: String,
}

impl Guard {
    /// Spawns `command` (its stdin closed), to be killed when the guard drops.
    pub fn spawn(mut command: Command, what: &str) -> Guard {
        command.stdin(Stdio::null());
        let child = command.spawn().unwrap_or_else(|error| panic!("starting {what}: {error}"));
        Guard { child, what: what.to_owned() }
    }

    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills (SIGKILL) and reaps the child now.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running demo, listening on a free port of 127.0.0.1; killed when dropped.
pub struct Demo {
    pub process: Guard,
    /// `http://127.0.0.1:PORT/`.
    pub base: String,
    pub port: u16,
    stderr: mpsc::Receiver<String>,
}

impl Demo {
    /// Starts the demo with `--port 0` and these extra arguments; with no `--keys` among them it
    /// uses an ephemeral ring, whatever the environment holds.
    pub fn start(binary: &Path, args: &[&str]) -> Demo {
        let mut command = Command::new(binary);
        command
            .args(["--port", "0"])
            .args(args)
            .env_remove("SEALED_SESSION_KEYS")
            .env_remove("SEALED_SESSION_KEYS_FILE")
            .env_remove("PORT")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut process = Guard::spawn(command, &format!("the demo {}", binary.display()));

        // Both pipes are read on threads: a silent demo fails the test in time, and a chatty one
        // never blocks on a full pipe.
        let stdout = process.child.stdout.take().expect("piped stdout");
        let (url_tx, url_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = url_tx.send(url.trim().to_owned());
                }
            }
        });
        let mut stderr = process.child.stderr.take().expect("piped stderr");
        let (err_tx, err_rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = err_tx.send(text);
        });

        match url_rx.recv_timeout(STARTUP) {
            Ok(base) => {
                let port = base
                    .strip_prefix("http://127.0.0.1:")
                    .and_then(|rest| rest.trim_end_matches('/').parse().ok())
                    .unwrap_or_else(|| panic!("the demo listens on 127.0.0.1 only, not {base}"));
                Demo { process, base, port, stderr: err_rx }
            }
            Err(_) => {
                process.kill();
                let stderr = err_rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!(
                    "the demo did not print \"{LISTENING}URL\" within {STARTUP:?}; stderr:\n{stderr}"
                );
            }
        }
    }

    /// `base` joined with an absolute path.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base.trim_end_matches('/'), path)
    }

    /// Kills the demo now (SIGKILL) and returns what it wrote to stderr.
    pub fn kill(&mut self) -> String {
        self.process.kill();
        self.stderr.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }
}
