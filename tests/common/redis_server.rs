//! A throwaway `redis-server` for one test: 127.0.0.1, a free port, no persistence, its own
//! empty directory, killed when dropped. A missing binary fails the test (it never skips).

#![allow(dead_code)]

use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a new server may take to answer `PING`.
const STARTUP: Duration = Duration::from_secs(10);

/// A running `redis-server`; killed (and reaped) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    /// Its working directory: its own, so that a server never loads another's `dump.rdb`
    /// (a replica's full sync writes one even without `--save`).
    dir: tempfile::TempDir,
    extra: Vec<String>,
}

impl RedisServer {
    /// Starts a server on a free port of 127.0.0.1 and waits until it answers `PING`.
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed, or does not answer within 10 s.
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// [`start`](RedisServer::start) with extra `redis-server` arguments (`extra` may name
    /// the port as `{port}`).
    pub fn start_with(extra: &[&str]) -> RedisServer {
        // The port is free when asked for; another process could take it before the server
        // binds it, so a server that exits at once is retried on another port.
        for _ in 0..5 {
            let port = free_port();
            if let Some(server) = RedisServer::start_on_with(port, extra) {
                return server;
            }
        }
        panic!("redis-server failed to start on 5 free ports in a row");
    }

    /// Starts a server on `port` (after [`stop`](RedisServer::stop), to bring Redis back where
    /// clients expect it). `None` when it exits at once (the port was taken).
    ///
    /// # Panics
    ///
    /// When `redis-server` is not installed, or runs but does not answer within 10 s.
    pub fn start_on(port: u16) -> Option<RedisServer> {
        RedisServer::start_on_with(port, &[])
    }

    /// [`start_on`](RedisServer::start_on) with extra arguments, as for
    /// [`start_with`](RedisServer::start_with).
    pub fn start_on_with(port: u16, extra: &[&str]) -> Option<RedisServer> {
        let extra: Vec<String> =
            extra.iter().map(|arg| arg.replace("{port}", &port.to_string())).collect();
        let dir = tempfile::tempdir().expect("a directory for redis-server");
        let mut server = RedisServer { child: None, port, dir, extra };
        server.spawn().then_some(server)
    }

    /// Starts the server again after [`stop`](RedisServer::stop), on the same port and in the
    /// same directory: with what it saved there (`SAVE`), as a server restarted from its
    /// snapshot is. `false` when it exits at once (the port was taken).
    pub fn restart(&mut self) -> bool {
        self.stop();
        self.spawn()
    }

    fn spawn(&mut self) -> bool {
        let port = self.port;
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(&self.extra)
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.path().to_string_lossy()])
            .args(["--loglevel", "warning", "--logfile", ""])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed (not found on PATH): the revocation tests need \
                 a real Redis server. Install it with `bash scripts/install-deps.sh` (or \
                 `apt-get install redis-server`)"
            ),
            Err(error) => panic!("starting redis-server: {error}"),
        };
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < STARTUP {
            if self.ping() {
                return true;
            }
            let child = self.child.as_mut().expect("running");
            if let Some(status) = child.try_wait().expect("polling redis-server") {
                eprintln!("redis-server on port {port} exited at once ({status})");
                self.child = None;
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server on port {port} did not answer PING within {STARTUP:?}");
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Whether the server answers `PING` with `+PONG` within a second.
    pub fn ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let limit = Some(Duration::from_secs(1));
        if stream.set_read_timeout(limit).is_err() || stream.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut answer = [0u8; 7];
        let answered = stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n";
        let _ = stream.shutdown(Shutdown::Both);
        answered
    }

    /// Freezes the server (`SIGSTOP`): connections stay open and connecting still succeeds
    /// (the kernel completes the handshake), but nothing is ever answered, as with a hung
    /// server.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    /// Lets a paused server run again (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().expect("running").id();
        // The shell's built-in kill: no dependency on procps or libc.
        let status = Command::new("sh")
            .args(["-c", &format!("kill -{name} {pid}")])
            .status()
            .expect("running sh -c kill");
        assert!(status.success(), "kill -{name} {pid}: {status}");
    }

    /// Kills the server and waits for it: connections are closed, and connecting is refused.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("a bound socket has an address").port()
}
