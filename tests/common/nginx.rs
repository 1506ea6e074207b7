//! nginx (Debian's package) on a free port of 127.0.0.1, with the `http` block's server part
//! given by the test, stopped (TERM, then KILL to its process group) when dropped.

#![allow(dead_code)]

use std::os::unix::fs::MetadataExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::processes::{Guard, free_port, require_tool, wait_for_port};

/// A running nginx.
pub struct Nginx {
    process: Guard,
    dir: PathBuf,
    pub port: u16,
}

impl Nginx {
    /// Starts nginx in `dir` (its temp files, logs and pid) with `site` inside the `http`
    /// block; `site` holds `{port}` where the `server` block listens.
    pub fn start(dir: &Path, site: &str) -> Nginx {
        let nginx = require_tool("/usr/sbin/nginx", "nginx");
        let port = free_port();
        // Run as root, nginx would hand its workers to `nobody`, who cannot use this directory.
        let root = std::fs::metadata("/proc/self").map(|m| m.uid() == 0).unwrap_or(false);
        let user = if root { "user root;" } else { "" };
        let d = dir.display();
        let site = site.replace("{port}", &port.to_string());
        let config = format!(
            "daemon off;
master_process on;
{user}
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
{site}
}}
"
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("writing nginx.conf");
        let mut command = Command::new(nginx);
        command.arg("-c").arg(&conf).arg("-p").arg(dir).arg("-e").arg(dir.join("error.log"));
        command.stdout(Stdio::null()).stderr(Stdio::inherit()).process_group(0);
        let process = Guard::spawn(command, "nginx");
        wait_for_port(port, Duration::from_secs(20), "nginx");
        Nginx { process, dir: dir.to_path_buf(), port }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let pid = self.process.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let group = format!("-{pid}");
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        self.process.kill();
    }
}
