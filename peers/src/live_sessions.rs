//! The load driver of `scripts/live-sessions.sh`: logs in at one contender until 10^3, 10^4, ...
//! live sessions exist, and at each level measures what the server (and its Redis) costs.
//!
//! ```sh
//! peers live-sessions http://127.0.0.1:PORT --pid SERVER_PID --hz 100 \
//!     [--redis-port PORT --redis-pid PID] [--levels 1000,10000] [--connections 8] \
//!     [--batch 50000] [--reserve-mb 3072]
//! ```
//!
//! Every request goes over one of `--connections` keep-alive connections, all driven by one
//! thread (a tokio task per connection, like wrk's event loop: client threads of their own
//! would queue for the client's CPU and add their waits to the latencies; `httparse` reads the
//! answers). Per level:
//!
//! 1. **fill**: fresh logins (no cookie: each one is a new session) until the level is reached;
//!    the logins per second and the server's CPU per login of this phase are reported;
//! 2. the server's resident memory (`VmRSS` of `/proc/PID/status`), and for the Redis stores
//!    Redis's `used_memory` (`INFO memory`) and resident memory;
//! 3. **read**: `--batch` authenticated reads (`GET /read`), each with the cookies of a session
//!    drawn at random from a uniform sample of all the sessions logged in so far;
//! 4. **login**: `--batch` logins from a browser that already holds a session (sample slot
//!    `i mod len` for request `i`): each replaces a live session with a new one (the stores
//!    delete the old record), so the number of live sessions stays at the level.
//!
//! For 3 and 4: the server's CPU time (utime + stime of `/proc/PID/stat`, in ticks of `--hz`)
//! over the batch divided by the batch size, Redis's the same way, and the p50 and p99 of the
//! requests' latencies as the client saw them. One CSV line per level on stdout (the header
//! first); progress on stderr.
//!
//! Memory: before each fill the driver predicts what the level needs from the bytes per session
//! measured so far (server and Redis RSS); a level that would leave less than `--reserve-mb` of
//! `MemAvailable` is skipped, with its reason in the CSV line, and so are the levels above it.
//! A fill also stops if `MemAvailable` falls below half the reserve (the machine is shared).

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// The CSV columns, in order.
pub const HEADER: &str = "sessions,server_rss_kb,redis_used_memory_b,redis_rss_kb,\
fill_logins_per_s,fill_server_cpu_us,read_server_cpu_us,read_redis_cpu_us,read_p50_ms,read_p99_ms,\
login_server_cpu_us,login_redis_cpu_us,login_p50_ms,login_p99_ms,note";

/// What the command line asks for.
struct Options {
    addr: String,
    pid: u32,
    hz: f64,
    redis_port: Option<u16>,
    redis_pid: Option<u32>,
    levels: Vec<u64>,
    connections: usize,
    batch: u64,
    reserve_kb: u64,
}

fn parse(args: &[String]) -> Result<Options, Failure> {
    let value = |name: &str| -> Option<&String> {
        args.iter().position(|a| a == name).and_then(|i| args.get(i + 1))
    };
    let url = args.first().ok_or("the server's URL is required")?;
    let addr = url
        .strip_prefix("http://")
        .ok_or("the URL must start with http://")?
        .trim_end_matches('/')
        .to_owned();
    let levels = match value("--levels") {
        Some(list) => list.split(',').map(str::parse).collect::<Result<Vec<u64>, _>>()?,
        None => vec![1_000, 10_000, 100_000, 1_000_000],
    };
    if levels.is_empty() || levels.windows(2).any(|w| w[0] >= w[1]) {
        return Err("--levels must be increasing".into());
    }
    Ok(Options {
        addr,
        pid: value("--pid").ok_or("--pid is required")?.parse()?,
        hz: value("--hz").map_or(Ok(100.0), |v| v.parse())?,
        redis_port: value("--redis-port").map(|v| v.parse()).transpose()?,
        redis_pid: value("--redis-pid").map(|v| v.parse()).transpose()?,
        levels,
        connections: value("--connections").map_or(Ok(8), |v| v.parse())?,
        batch: value("--batch").map_or(Ok(50_000), |v| v.parse())?,
        reserve_kb: value("--reserve-mb").map_or(Ok(3_072), |v| v.parse::<u64>())? * 1024,
    })
}

/// Runs the ladder and prints the CSV.
pub fn run(args: &[String]) -> Result<(), Failure> {
    let options = parse(args)?;
    let driver = Arc::new(Driver {
        sample: Mutex::new(Sample::new(options.batch.max(1) as usize)),
        logged_in: AtomicU64::new(0),
        options,
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let options = &driver.options;
    println!("{HEADER}");
    let start_rss = rss_kb(options.pid)? + options.redis_pid.map_or(Ok(0), rss_kb)?;
    // Level 0: the empty server (and Redis), what every level's memory is compared with.
    let (redis_used, redis_rss) = redis_memory(options)?;
    println!("0,{},{redis_used},{redis_rss},,,,,,,,,,,", rss_kb(options.pid)?);
    let mut skipped: Option<String> = None;
    for &level in &options.levels {
        if let Some(reason) = &skipped {
            println!("{level},,,,,,,,,,,,,,{reason}");
            continue;
        }
        let have = driver.logged_in.load(Ordering::Relaxed);
        let now_rss = rss_kb(options.pid)? + options.redis_pid.map_or(Ok(0), rss_kb)?;
        if have > 0 {
            let per_session_kb = now_rss.saturating_sub(start_rss) as f64 / have as f64;
            let need_kb = (per_session_kb * (level - have) as f64 * 1.25) as u64;
            let available_kb = mem_available_kb()?;
            if need_kb + options.reserve_kb > available_kb {
                let reason = format!(
                    "skipped: needs about {:.1} GB more ({:.1} KB per session so far); \
                     {:.1} GB available; {:.1} GB kept free for the machine's other jobs",
                    need_kb as f64 / 1048576.0,
                    per_session_kb,
                    available_kb as f64 / 1048576.0,
                    options.reserve_kb as f64 / 1048576.0,
                );
                eprintln!("  {level}: {reason}");
                println!("{level},,,,,,,,,,,,,,{reason}");
                skipped = Some(format!("skipped: level {level} did not fit"));
                continue;
            }
        }
        let fill = runtime.block_on(Arc::clone(&driver).fill(level))?;
        let reached = driver.logged_in.load(Ordering::Relaxed);
        if reached < level {
            let reason = format!(
                "stopped at {reached} sessions: MemAvailable fell below {:.1} GB",
                options.reserve_kb as f64 / 2.0 / 1048576.0
            );
            eprintln!("  {level}: {reason}");
            println!("{level},,,,,,,,,,,,,,{reason}");
            skipped = Some(format!("skipped: level {level} did not fit"));
            continue;
        }
        let server_rss = rss_kb(options.pid)?;
        let (redis_used, redis_rss) = redis_memory(options)?;
        let read = runtime.block_on(Arc::clone(&driver).batch(Route::Read))?;
        let login = runtime.block_on(Arc::clone(&driver).batch(Route::Relogin))?;
        eprintln!(
            "  {level} sessions: server RSS {:.1} MB, fill {:.0} logins/s; read {:.2} us CPU, p99 \
             {:.3} ms; login {:.2} us CPU, p99 {:.3} ms",
            server_rss as f64 / 1024.0,
            fill.per_second,
            read.server_cpu_us,
            read.p99_ms,
            login.server_cpu_us,
            login.p99_ms,
        );
        let redis_cpu = |b: &Batch| {
            if options.redis_pid.is_some() {
                format!("{:.2}", b.redis_cpu_us)
            } else {
                String::new()
            }
        };
        println!(
            "{level},{server_rss},{redis_used},{redis_rss},{:.0},{:.2},{:.2},{},{:.3},{:.3},{:.2},{},{:.3},{:.3},",
            fill.per_second,
            fill.server_cpu_us,
            read.server_cpu_us,
            redis_cpu(&read),
            read.p50_ms,
            read.p99_ms,
            login.server_cpu_us,
            redis_cpu(&login),
            login.p50_ms,
            login.p99_ms,
        );
    }
    Ok(())
}

/// The two measured requests.
#[derive(Clone, Copy, PartialEq)]
enum Route {
    Read,
    Relogin,
}

struct Fill {
    per_second: f64,
    server_cpu_us: f64,
}

struct Batch {
    server_cpu_us: f64,
    redis_cpu_us: f64,
    p50_ms: f64,
    p99_ms: f64,
}

struct Driver {
    options: Options,
    sample: Mutex<Sample>,
    logged_in: AtomicU64,
}

impl Driver {
    /// Fresh logins until `level` sessions exist (or memory runs short).
    async fn fill(self: Arc<Self>, level: u64) -> Result<Fill, Failure> {
        let before = self.logged_in.load(Ordering::Relaxed);
        let ticks = cpu_ticks(self.options.pid)?;
        let started = Instant::now();
        let claimed = Arc::new(AtomicU64::new(before));
        let short_of_memory = Arc::new(AtomicBool::new(false));
        let reserve = self.options.reserve_kb / 2;
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..self.options.connections {
            let (driver, claimed, short_of_memory) =
                (Arc::clone(&self), Arc::clone(&claimed), Arc::clone(&short_of_memory));
            workers.spawn(async move {
                let mut connection = Connection::open(&driver.options.addr).await?;
                loop {
                    let n = claimed.fetch_add(1, Ordering::Relaxed);
                    if n >= level || short_of_memory.load(Ordering::Relaxed) {
                        return Ok::<(), Failure>(());
                    }
                    if n % 10_000 == 0 && mem_available_kb()? < reserve {
                        short_of_memory.store(true, Ordering::Relaxed);
                        return Ok(());
                    }
                    let answer = connection.request("POST", "/login", None).await?;
                    if answer.status != 200 {
                        return Err(format!("login answered {}", answer.status).into());
                    }
                    let jar = apply(None, &answer.set_cookies);
                    if jar.is_empty() {
                        return Err("login set no cookie".into());
                    }
                    let count = driver.logged_in.fetch_add(1, Ordering::Relaxed) + 1;
                    driver.sample.lock().unwrap().offer(count, jar);
                }
            });
        }
        while let Some(done) = workers.join_next().await {
            done??;
        }
        let elapsed = started.elapsed().as_secs_f64();
        let done = self.logged_in.load(Ordering::Relaxed) - before;
        let cpu = (cpu_ticks(self.options.pid)? - ticks) as f64 / self.options.hz;
        Ok(Fill {
            per_second: done as f64 / elapsed,
            server_cpu_us: cpu * 1e6 / done.max(1) as f64,
        })
    }

    /// `--batch` requests of `route` over sessions of the sample.
    async fn batch(self: Arc<Self>, route: Route) -> Result<Batch, Failure> {
        let total = self.options.batch;
        let slots = self.sample.lock().unwrap().jars.len() as u64;
        let claimed = Arc::new(AtomicU64::new(0));
        let redis_ticks = self.options.redis_pid.map_or(Ok(0), cpu_ticks)?;
        let ticks = cpu_ticks(self.options.pid)?;
        let mut workers = tokio::task::JoinSet::new();
        for worker in 0..self.options.connections {
            let (driver, claimed) = (Arc::clone(&self), Arc::clone(&claimed));
            workers.spawn(async move {
                let mut rng = StdRng::seed_from_u64(worker as u64);
                let mut connection = Connection::open(&driver.options.addr).await?;
                let mut latencies = Vec::new();
                loop {
                    let i = claimed.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<Vec<Duration>, Failure>(latencies);
                    }
                    let slot = match route {
                        Route::Read => rng.random_range(0..slots),
                        Route::Relogin => i % slots,
                    } as usize;
                    let jar = driver.sample.lock().unwrap().jars[slot].clone();
                    let header = cookie_header(&jar);
                    let (method, path) = match route {
                        Route::Read => ("GET", "/read"),
                        Route::Relogin => ("POST", "/login"),
                    };
                    let started = Instant::now();
                    let answer = connection.request(method, path, Some(&header)).await?;
                    latencies.push(started.elapsed());
                    if answer.status != 200 {
                        return Err(format!("{path} answered {}", answer.status).into());
                    }
                    match route {
                        Route::Read if answer.body != b"hello, bench\n" => {
                            let body = String::from_utf8_lossy(&answer.body);
                            return Err(format!("read answered {body:?}").into());
                        }
                        Route::Read => {}
                        Route::Relogin => {
                            let jar = apply(Some(jar), &answer.set_cookies);
                            driver.sample.lock().unwrap().jars[slot] = jar;
                        }
                    }
                }
            });
        }
        let mut latencies = Vec::new();
        while let Some(done) = workers.join_next().await {
            latencies.extend(done??);
        }
        let server = (cpu_ticks(self.options.pid)? - ticks) as f64 / self.options.hz;
        let redis = (self.options.redis_pid.map_or(Ok(0), cpu_ticks)? - redis_ticks) as f64
            / self.options.hz;
        let mut ms: Vec<f64> = latencies.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let quantile = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
        Ok(Batch {
            server_cpu_us: server * 1e6 / total as f64,
            redis_cpu_us: redis * 1e6 / total as f64,
            p50_ms: quantile(0.50),
            p99_ms: quantile(0.99),
        })
    }
}

/// A session's cookies, name and value.
type Jar = Vec<(String, String)>;

/// A uniform sample of the sessions logged in so far (reservoir sampling), so that reads touch
/// sessions spread over the whole store rather than the last ones written.
struct Sample {
    capacity: usize,
    jars: Vec<Jar>,
    rng: StdRng,
}

impl Sample {
    fn new(capacity: usize) -> Sample {
        Sample { capacity, jars: Vec::with_capacity(capacity), rng: StdRng::seed_from_u64(27) }
    }

    /// The `count`-th session logged in.
    fn offer(&mut self, count: u64, jar: Jar) {
        if self.jars.len() < self.capacity {
            self.jars.push(jar);
        } else {
            let j = self.rng.random_range(0..count) as usize;
            if j < self.capacity {
                self.jars[j] = jar;
            }
        }
    }
}

/// `jar` after the response's `Set-Cookie` lines (a cookie with `Max-Age=0` is removed).
fn apply(jar: Option<Jar>, set_cookies: &[String]) -> Jar {
    let mut jar = jar.unwrap_or_default();
    for line in set_cookies {
        let mut parts = line.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.trim().split_once('=')) else {
            continue;
        };
        let removed = parts.any(|attribute| attribute.trim().eq_ignore_ascii_case("max-age=0"));
        jar.retain(|(existing, _)| existing != name);
        if !removed {
            jar.push((name.to_owned(), value.to_owned()));
        }
    }
    jar
}

fn cookie_header(jar: &Jar) -> String {
    jar.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("; ")
}

/// One answer: status, `Set-Cookie` lines, body.
struct Answer {
    status: u16,
    set_cookies: Vec<String>,
    body: Vec<u8>,
}

/// A keep-alive HTTP/1.1 connection (requests one at a time, no pipelining).
struct Connection {
    addr: String,
    reader: tokio::io::BufReader<TcpStream>,
}

impl Connection {
    async fn open(addr: &str) -> Result<Connection, Failure> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let reader = tokio::io::BufReader::with_capacity(16 * 1024, stream);
        Ok(Connection { addr: addr.to_owned(), reader })
    }

    /// Sends one request; reconnects once if the server had closed the idle connection.
    async fn request(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<Answer, Failure> {
        match self.exchange(method, path, cookie).await {
            Ok(answer) => Ok(answer),
            Err(_) => {
                *self = Connection::open(&self.addr).await?;
                self.exchange(method, path, cookie).await
            }
        }
    }

    async fn exchange(
        &mut self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
    ) -> Result<Answer, Failure> {
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if method == "POST" {
            request.push_str("Content-Length: 0\r\n");
        }
        if let Some(cookie) = cookie {
            request.push_str("Cookie: ");
            request.push_str(cookie);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        self.reader.get_mut().write_all(request.as_bytes()).await?;
        // The head: read until the blank line, then let httparse read it.
        let mut head = Vec::new();
        loop {
            let read = self.reader.read_until(b'\n', &mut head).await?;
            if read == 0 {
                return Err("connection closed".into());
            }
            if head.ends_with(b"\r\n\r\n") {
                break;
            }
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        if !response.parse(&head)?.is_complete() {
            return Err("incomplete response head".into());
        }
        let status = response.code.ok_or("no status")?;
        let mut length = 0usize;
        let mut set_cookies = Vec::new();
        for header in response.headers.iter() {
            if header.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(header.value)?.trim().parse()?;
            } else if header.name.eq_ignore_ascii_case("set-cookie") {
                set_cookies.push(String::from_utf8(header.value.to_vec())?);
            } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
                return Err("chunked answers are not expected here".into());
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).await?;
        Ok(Answer { status, set_cookies, body })
    }
}

/// utime + stime of a process (all its threads), in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, Failure> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count from the closing parenthesis.
    let rest = stat.rsplit_once(')').ok_or("unexpected /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the file are 12 and 13 after the name (field 3 is index 0).
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// `VmRSS` of a process, in KB.
fn rss_kb(pid: u32) -> Result<u64, Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    kb_field(&status, "VmRSS:")
}

fn mem_available_kb() -> Result<u64, Failure> {
    kb_field(&std::fs::read_to_string("/proc/meminfo")?, "MemAvailable:")
}

fn kb_field(text: &str, name: &str) -> Result<u64, Failure> {
    let line = text.lines().find(|l| l.starts_with(name)).ok_or(format!("no {name}"))?;
    let value = line[name.len()..].trim().trim_end_matches("kB").trim();
    Ok(value.parse()?)
}

/// Redis's `used_memory` (bytes) and VmRSS (KB) as CSV fields; empty without Redis.
fn redis_memory(options: &Options) -> Result<(String, String), Failure> {
    Ok(match (options.redis_port, options.redis_pid) {
        (Some(port), Some(pid)) => (redis_used_memory(port)?.to_string(), rss_kb(pid)?.to_string()),
        _ => (String::new(), String::new()),
    })
}

/// Redis's `used_memory` (bytes), from `INFO memory` over RESP.
fn redis_used_memory(port: u16) -> Result<u64, Failure> {
    let stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
    let mut reader = BufReader::new(stream);
    reader.get_mut().write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nmemory\r\n")?;
    let mut first = String::new();
    reader.read_line(&mut first)?;
    let length: usize =
        first.trim().strip_prefix('$').ok_or(format!("INFO answered {first:?}"))?.parse()?;
    let mut info = vec![0; length];
    reader.read_exact(&mut info)?;
    let info = String::from_utf8(info)?;
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .ok_or("no used_memory in INFO memory")?;
    Ok(line.trim().parse()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_cookie_lines_update_the_jar() {
        let cases: [(&[&str], &[&str], &str); 4] = [
            (&[], &["id=1; Path=/; HttpOnly"], "id=1"),
            (&["id=1"], &["id=2; Path=/"], "id=2"),
            (&["s=a", "s.1=b"], &["s=c; Path=/", "s.1=; Max-Age=0; Path=/"], "s=c"),
            (&["a=1"], &["b=2", "c=3; SameSite=Lax"], "a=1; b=2; c=3"),
        ];
        for (before, lines, after) in cases {
            let jar: Jar = before
                .iter()
                .map(|pair| {
                    let (n, v) = pair.split_once('=').unwrap();
                    (n.to_owned(), v.to_owned())
                })
                .collect();
            let lines: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
            assert_eq!(cookie_header(&apply(Some(jar), &lines)), after, "{before:?} + {lines:?}");
        }
    }

    #[test]
    fn the_sample_stays_uniform_and_bounded() {
        let mut sample = Sample::new(100);
        for count in 1..=10_000u64 {
            sample.offer(count, vec![("n".to_owned(), count.to_string())]);
        }
        assert_eq!(sample.jars.len(), 100);
        let late =
            sample.jars.iter().filter(|jar| jar[0].1.parse::<u64>().unwrap() > 5_000).count();
        // Half the sessions came after 5,000: a uniform sample holds about half of them.
        assert!((30..=70).contains(&late), "{late} of 100 from the second half");
    }
}
