//! A TCP proxy in front of Redis, as a virtual IP or a DNS name is in a deployment: it can be
//! repointed at another server (a failover, as Sentinel or an operator moves the address), and
//! cut (a partition: every connection closed, new ones closed at once) and healed.

use std::io::Read as _;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

pub struct Proxy {
    port: u16,
    upstream: Arc<AtomicU16>,
    open: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    links: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    /// A proxy on a free port of 127.0.0.1 to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let proxy = Proxy {
            port,
            upstream: Arc::new(AtomicU16::new(upstream)),
            open: Arc::new(AtomicBool::new(true)),
            stop: Arc::new(AtomicBool::new(false)),
            links: Arc::new(Mutex::new(Vec::new())),
        };
        let (upstream, open, stop, links) =
            (proxy.upstream.clone(), proxy.open.clone(), proxy.stop.clone(), proxy.links.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if !open.load(Ordering::SeqCst) {
                    continue; // dropped: closed at once
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream.load(Ordering::SeqCst)))
                else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let ends = (client.try_clone(), server.try_clone());
                let (Ok(client_end), Ok(server_end)) = ends else { continue };
                {
                    let mut held = links.lock().expect("not poisoned");
                    held.push(client_end);
                    held.push(server_end);
                }
                pipe(client.try_clone().expect("a socket"), server.try_clone().expect("a socket"));
                pipe(server, client);
            }
        });
        proxy
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Closes every connection and closes new ones at once.
    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.close_all();
    }

    pub fn heal(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// New connections go to `127.0.0.1:port`; the old ones are closed.
    pub fn repoint(&self, port: u16) {
        self.upstream.store(port, Ordering::SeqCst);
        self.close_all();
    }

    fn close_all(&self) {
        for link in self.links.lock().expect("not poisoned").drain(..) {
            let _ = link.shutdown(Shutdown::Both);
        }
    }
}

/// Copies `from` to `to` on a thread until either side ends, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if std::io::Write::write_all(&mut to, &buffer[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    });
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        // Wakes the accepting thread so it sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}
