//! A TCP proxy that delays every byte by a fixed time in each direction: a network round trip
//! between a server and its Redis, on a machine whose kernel has no `tc netem`.
//!
//! ```sh
//! peers delay-proxy 127.0.0.1:6379 0.5   # UPSTREAM, one-way delay in ms
//! ```
//!
//! Listens on a free port of 127.0.0.1 and prints `peers delay-proxy listening on ADDR`. Each
//! direction of each connection has a reader thread, which stamps every chunk it reads with
//! the time it arrived, and a writer thread, which sends each chunk once its delay has passed:
//! chunks are delayed, not serialized behind one another, so a pipelined stream keeps its
//! pace. Threads (not tokio) because tokio's timer rounds sleeps up to whole milliseconds.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Runs the proxy until the process is stopped.
pub fn serve(upstream: &str, one_way: Duration) -> Result<(), Box<dyn std::error::Error>> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    println!("peers delay-proxy listening on {}", listener.local_addr()?);
    for client in listener.incoming() {
        let client = client?;
        let server = TcpStream::connect(upstream)?;
        for stream in [&client, &server] {
            stream.set_nodelay(true)?;
        }
        pipe(client.try_clone()?, server.try_clone()?, one_way);
        pipe(server, client, one_way);
    }
    Ok(())
}

/// Copies `from` to `to`, each chunk `delay` after it arrived.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let (chunks, arrived) = mpsc::channel::<(Instant, Vec<u8>)>();
    thread::spawn(move || {
        let mut buf = vec![0; 64 * 1024];
        while let Ok(n @ 1..) = from.read(&mut buf) {
            if chunks.send((Instant::now(), buf[..n].to_vec())).is_err() {
                break;
            }
        }
    });
    thread::spawn(move || {
        for (at, chunk) in arrived {
            let due = at + delay;
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
