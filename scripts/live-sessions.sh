#!/usr/bin/env bash
# How a server's cost grows with the number of live sessions: sealed-session (the state is in
# the cookie) against tower-sessions' MemoryStore and the Redis stores (tower-sessions-redis-store,
# actix-session's RedisSessionStore), served by the peers/ package as scripts/peers.sh serves
# them (same routes, same 10-line cart and CSRF token at login).
#
# For each contender, a fresh server (one worker, on CPU 0) and, for the Redis stores, a fresh
# redis-server of its own on a free port of 127.0.0.1 (also on REDIS_CPU, default 0; no
# persistence, no maxmemory, so every session stays; the stores' own TTLs, 1 day for
# actix-session and 2 weeks for tower-sessions, outlast the run). The load driver
# (`peers live-sessions`, peers/src/live_sessions.rs, on CPU 1, CONNECTIONS keep-alive
# connections) logs in until each of LEVELS sessions exist, and at each level measures:
#
#   - the server's VmRSS (/proc/PID/status), Redis's `used_memory` (INFO memory) and VmRSS;
#   - BATCH authenticated reads (GET /read) of sessions drawn uniformly from all those logged
#     in: the server's CPU time (utime + stime from /proc/PID/stat) over the batch / BATCH,
#     Redis's the same way, and the p50 and p99 of the latencies the client saw;
#   - BATCH logins from a browser that already holds a session (each replaces a live session
#     with a new one, so the level stays put), measured the same way;
#   - while filling: fresh logins per second, and the server's CPU per fresh login.
#
# Memory: before each level the driver predicts what it needs from the bytes per session so
# far and skips it (the reason goes into the table) if it would leave less than RESERVE_MB of
# MemAvailable; a fill also stops if MemAvailable falls below half of that.
#
# The whole ladder runs RUNS times (default 2), the order of the contenders reversed every other
# run. The report gives memory as the median of the runs and the time-dependent columns (CPU,
# p99, logins/s) as the better run, since other jobs on a shared machine only ever add to them.
#
# Environment: LEVELS (default "1000 10000 100000 1000000"), RUNS (2), CONNECTIONS (8), BATCH
# (50000), RESERVE_MB (3072), REDIS_CPU (0), CONTENDERS (default "sealed-axum tower-memory
# tower-redis actix-redis"; any of peers/src/main.rs), OUT (where live-sessions.csv and
# live-sessions.svg go, default docs/bench).
# Options: --write puts the report into BENCHMARKS.md between `<!-- live-sessions:begin -->`
# and `<!-- live-sessions:end -->`. Needs taskset, redis-server, two CPUs, and matplotlib (in
# the venv scripts/bench-report.sh makes, created here if missing). Not part of the test suite:
# about 18 minutes per run of the five default contenders on the loaded machine of
# BENCHMARKS.md, and about 9 GB of free memory for MemoryStore at 10^6 sessions.
set -euo pipefail
cd "$(dirname "$0")/.."

LEVELS="${LEVELS:-1000 10000 100000 1000000}"
RUNS="${RUNS:-2}"
CONNECTIONS="${CONNECTIONS:-8}"
BATCH="${BATCH:-50000}"
RESERVE_MB="${RESERVE_MB:-3072}"
REDIS_CPU="${REDIS_CPU:-0}"
OUT="${OUT:-docs/bench}"
read -r -a contenders <<<"${CONTENDERS:-sealed-axum tower-memory tower-redis sealed-actix actix-redis}"
write_report=0
for arg in "$@"; do
    case "$arg" in
        --write) write_report=1 ;;
        *) echo "usage: [LEVELS=... RUNS=2 ...] $0 [--write]" >&2; exit 2 ;;
    esac
done
for tool in taskset redis-server; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: bash scripts/install-deps.sh" >&2; exit 1; }
done
(($(nproc) >= 2)) || { echo "needs two CPUs (servers on CPU 0, the driver on CPU 1)" >&2; exit 1; }

started="$(date -u '+%Y-%m-%d %H:%M')"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --manifest-path peers/Cargo.toml --quiet
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path peers/Cargo.toml |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
peers="$target_dir/release/peers"

venv="$PWD/target/bench-report/venv"
if ! "$venv/bin/python" -c "import matplotlib" 2>/dev/null; then
    mkdir -p "$(dirname "$venv")"
    [[ -x "$venv/bin/python" ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "matplotlib==3.10.7"
fi

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

# Stops process $1 (one this script started) and waits for it.
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# Starts a redis-server of its own on a free port: sets $redis_port and $redis_pid.
start_redis() {
    redis_port="" redis_pid=""
    for _ in $(seq 20); do
        local port=$((20000 + RANDOM % 40000))
        taskset -c "$REDIS_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --maxmemory 0 --daemonize no >"$work/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 50); do
            if [[ "$(redis-cli -p "$port" ping 2>/dev/null)" == PONG ]]; then redis_port="$port"; break; fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        if [[ -n "$redis_port" ]]; then pids+=("$redis_pid"); return; fi
        stop "$redis_pid"
    done
    echo "redis-server did not start: $(cat "$work/redis.log")" >&2
    exit 1
}

# Starts contender $1 on CPU 0 (with --redis when it needs one): sets $server_url, $server_pid.
start_server() {
    local log="$work/$1.log" args=()
    [[ "$1" != *-redis ]] || args+=(--redis "redis://127.0.0.1:$redis_port/")
    : >"$log"
    taskset -c 0 "$peers" "$1" "${args[@]}" >"$log" 2>&1 &
    server_pid=$!
    pids+=("$server_pid")
    for _ in $(seq 100); do
        server_url="$(sed -n 's/^peers .* listening on //p' "$log")"
        if [[ -n "$server_url" ]]; then return; fi
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "$1 did not start: $(cat "$log")" >&2
    exit 1
}

mkdir -p "$OUT"
csv="$OUT/live-sessions.csv"
hz="$(getconf CLK_TCK)"
levels="$(tr ' ' ',' <<<"$LEVELS")"
echo "levels $levels, $RUNS runs, $CONNECTIONS connections, batches of $BATCH; servers on CPU 0, driver on CPU 1"
header_written=0
for run in $(seq "$RUNS"); do
    order=("${contenders[@]}")
    if ((run % 2 == 0)); then
        order=()
        for ((i = ${#contenders[@]} - 1; i >= 0; i--)); do order+=("${contenders[i]}"); done
    fi
    for name in "${order[@]}"; do
        echo "run $run/$RUNS: $name (MemAvailable $(awk '/^MemAvailable:/ {printf "%.1f GB", $2 / 1048576}' /proc/meminfo))"
        redis_args=()
        redis_port="" redis_pid=""
        if [[ "$name" == *-redis ]]; then
            start_redis
            redis_args=(--redis-port "$redis_port" --redis-pid "$redis_pid")
        fi
        start_server "$name"
        taskset -c 1 "$peers" live-sessions "$server_url" --pid "$server_pid" --hz "$hz" \
            "${redis_args[@]}" --levels "$levels" --connections "$CONNECTIONS" --batch "$BATCH" \
            --reserve-mb "$RESERVE_MB" >"$work/driver.csv"
        if ((!header_written)); then
            echo "run,contender,$(head -1 "$work/driver.csv")" >"$work/all.csv"
            header_written=1
        fi
        tail -n +2 "$work/driver.csv" | sed "s/^/$run,$name,/" >>"$work/all.csv"
        stop "$server_pid"
        [[ -z "$redis_pid" ]] || stop "$redis_pid"
    done
done
cp "$work/all.csv" "$csv"
finished="$(date -u '+%H:%M')"
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"

rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src peers || echo ' (with uncommitted changes)')"
{
    echo "Command: \`bash scripts/live-sessions.sh\` (LEVELS=\"$LEVELS\" RUNS=$RUNS CONNECTIONS=$CONNECTIONS"
    echo "BATCH=$BATCH); commit \`$rev\`; $started to $finished UTC; $(nproc) CPUs,"
    echo "\`$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\`, $(awk '/^MemTotal:/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) of RAM, kernel $(uname -r),"
    echo "$(redis-server --version | cut -d' ' -f1-3); load average (1, 5, 15 min) before: $load_before, after:"
    echo "$load_after. Raw numbers of every run: [\`$csv\`]($csv)."
    echo
    "$venv/bin/python" scripts/live_sessions.py "$csv" "$OUT/live-sessions.svg"
} >"$work/report.md"
echo
cat "$work/report.md"
if ((write_report)); then
    grep -q '<!-- live-sessions:begin -->' BENCHMARKS.md ||
        { echo "BENCHMARKS.md has no <!-- live-sessions:begin --> marker" >&2; exit 1; }
    awk -v report="$work/report.md" '
        /<!-- live-sessions:begin -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
        /<!-- live-sessions:end -->/ { skip = 0 }
        !skip { print }
    ' BENCHMARKS.md >"$work/BENCHMARKS.md"
    cp "$work/BENCHMARKS.md" BENCHMARKS.md
    echo "wrote the report into BENCHMARKS.md"
fi
