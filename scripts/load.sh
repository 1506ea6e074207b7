#!/usr/bin/env bash
# Load test of the demo with wrk: what the session layer costs a request, end to end over HTTP.
#
# Two demo processes (release build) listen on free ports of 127.0.0.1, with a third server,
# the floor (below): one demo with the session layer, one with --no-session-layer, serving the
# same two routes with the same body sizes:
#
#   GET  /bench/read   reads "user" from the session (wrk sends the Cookie header of a login)
#   POST /bench/write  increments a counter in the session, so every response seals it again
#
# The read route is also run against the session layer without any cookie (a "visitor" with
# no session yet): the layer's fixed cost, with nothing to open. And against the floor
# (examples/load_floor.rs): the same route answered from the cheapest encrypted cookie there can
# be, base64url(nonce, AES-256-GCM(MessagePack state)) under a cipher created once, opened in the
# handler: what any encrypted cookie session would pay, whatever its design.
#
# Runs alternate between the two (route by route, in an order that flips every round) so that
# a busy stretch of a shared machine hits both sides; the table reports the median of ROUNDS
# runs of requests/s, of wrk's p50 and p99 latency, and of the server's CPU time per request
# (user + system, from /proc/PID/stat around each run: less sensitive than requests/s to other
# processes taking the CPU). Not part of the test suite: speed targets live in BENCHMARKS.md,
# not in tests.
#
# Environment: ROUNDS (default 5), DURATION (wrk -d, default 10s, below 60s), THREADS (wrk -t,
# default 1), CONNECTIONS (wrk -c, default 8), PIN (default 0; 1 runs both servers on CPU 0
# and wrk on CPU 1 with taskset, so that wrk never takes the server's CPU and requests/s
# measures the server alone). Needs wrk and curl (bash scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-5}"
DURATION="${DURATION:-10s}"
THREADS="${THREADS:-1}"
CONNECTIONS="${CONNECTIONS:-8}"
PIN="${PIN:-0}"
server_cpu=() client_cpu=()
if [[ "$PIN" == 1 ]]; then
    command -v taskset >/dev/null || { echo "PIN=1 needs taskset (util-linux)" >&2; exit 1; }
    (($(nproc) >= 2)) || { echo "PIN=1 needs two CPUs" >&2; exit 1; }
    server_cpu=(taskset -c 0) client_cpu=(taskset -c 1)
fi

if [[ ! "$DURATION" =~ ^[0-9]+s$ ]] || ((${DURATION%s} >= 60)); then
    echo "DURATION must be seconds below the session refresh interval (60s): $DURATION" >&2
    exit 1
fi

for tool in wrk curl; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: bash scripts/install-deps.sh" >&2; exit 1; }
done

cargo build --release -p sealed-session-demo --quiet
cargo build --release --example load_floor --features axum --quiet
release="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# Starts an example (the demo: an ephemeral key ring) with these arguments; sets $url once it
# listens.
start() {
    local log="$work/server-${#pids[@]}.log" example="$1" binary="$release/examples/$1"
    # The demo is a package of its own (`demo/`), built as the binary `demo`.
    [[ "$example" == demo ]] && binary="$release/demo"
    shift
    : >"$log"
    env -u SEALED_SESSION_KEYS -u SEALED_SESSION_KEYS_FILE -u PORT \
        "${server_cpu[@]}" "$binary" --port 0 "$@" >"$log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        url="$(sed -n 's/^sealed-session .* listening on //p' "$log")"
        if [[ -n "$url" ]]; then url="${url%/}"; return; fi
        sleep 0.1
    done
    echo "$example did not start: $(cat "$log")" >&2
    exit 1
}

start demo
session_url="$url"
session_pid="${pids[0]}"
start demo --no-session-layer
plain_url="$url"
plain_pid="${pids[1]}"
start load_floor
floor_url="$url"
floor_pid="${pids[2]}"
ticks_per_second="$(getconf CLK_TCK)"

# The CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}

# Log in as "bench" (at $1, the demo by default) and keep the session's cookies as one Cookie
# header value in $cookie.
# wrk sends the same Cookie header for a whole run and ignores Set-Cookie; a session older
# than the refresh interval (60 s) would be sealed again on every response, so each run of the
# session side logs in afresh (and DURATION stays below the interval).
# The demo's login form carries a CSRF token: it is read from /api/session first (the load
# floor has neither, and takes the login without one).
cookies_set() {
    sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | paste -sd ';' | sed 's/;/; /g'
}
login() {
    local base="${1:-$session_url}" first token headers=()
    first="$(curl -s -D - "$base/api/session")"
    token="$(printf '%s\n' "$first" | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p')"
    if [[ -n "$token" ]]; then
        headers+=(-H "Cookie: $(printf '%s\n' "$first" | cookies_set)" -H "x-csrf-token: $token")
    fi
    cookie="$(curl -s -o /dev/null -D - -X POST "${headers[@]}" -d user=bench "$base/login" |
        cookies_set)"
    [[ -n "$cookie" ]] || { echo "no session cookie from /login" >&2; exit 1; }
}
login

# Both sides answer the same bodies (sizes), and the session side sees the login.
check() {
    local a b
    a="$(curl -s -X "$1" -H "Cookie: $cookie" "$session_url$2")"
    b="$(curl -s -X "$1" "$plain_url$2")"
    [[ "${#a}" == "${#b}" ]] || { echo "$1 $2: bodies differ in size: '$a' vs '$b'" >&2; exit 1; }
    echo "$1 $2 -> ${a//$'\n'/}"
}
check GET /bench/read
check POST /bench/write
[[ "$(curl -s -H "Cookie: $cookie" "$session_url/bench/read")" == "hello, bench" ]] ||
    { echo "/bench/read does not see the login" >&2; exit 1; }
login "$floor_url"
[[ "$(curl -s -H "Cookie: $cookie" "$floor_url/bench/read")" == "hello, bench" ]] ||
    { echo "the floor's /bench/read does not see the login" >&2; exit 1; }
login
if curl -s -o /dev/null -D - -H "Cookie: $cookie" "$session_url/bench/read" | grep -qi '^set-cookie'; then
    echo "/bench/read sets a cookie: the read route would measure sealing too" >&2
    exit 1
fi

printf 'wrk.method = "POST"\n' >"$work/post.lua"

# Milliseconds from a wrk latency ("812.00us", "1.23ms", "2.01s").
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# One wrk run: appends "rps p50 p99 cpu_us_per_request" to $work/<route>-<side>.
run() {
    local route="$1" side="$2" url pid args=()
    case "$side" in
        session)
            url="$session_url" pid="$session_pid"
            login
            args+=(-H "Cookie: $cookie")
            ;;
        visitor) url="$session_url" pid="$session_pid" ;; # the layer, but no session cookie
        floor)
            url="$floor_url" pid="$floor_pid"
            login "$floor_url"
            args+=(-H "Cookie: $cookie")
            ;;
        *) url="$plain_url" pid="$plain_pid" ;;
    esac
    if [[ "$route" == write ]]; then args+=(-s "$work/post.lua"); fi
    local out before after
    before="$(cpu_ticks "$pid")"
    out="$("${client_cpu[@]}" wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}" "$url/bench/$route")"
    after="$(cpu_ticks "$pid")"
    if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; echo "non-2xx answers" >&2; exit 1; fi
    local rps p50 p99 requests cpu
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    requests="$(awk '/ requests in / {print $1}' <<<"$out")"
    cpu="$(awk -v t=$((after - before)) -v hz="$ticks_per_second" -v n="$requests" \
        'BEGIN {printf "%.2f", t / hz * 1e6 / n}')"
    echo "$rps $p50 $p99 $cpu" >>"$work/$route-$side"
    printf '  %-5s %-7s %10s req/s  p50 %7s ms  p99 %7s ms  server CPU %6s us/request\n' \
        "$route" "$side" "$rps" "$p50" "$p99" "$cpu"
}

echo "wrk -t$THREADS -c$CONNECTIONS -d$DURATION --latency, $ROUNDS alternating rounds, PIN=$PIN"
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS"
    if ((round % 2)); then order=(session plain); else order=(plain session); fi
    for route in read write; do
        sides=("${order[@]}")
        # A visitor without a session (the layer's fixed cost, with nothing to open), and the
        # floor.
        if [[ "$route" == read ]]; then sides+=(visitor floor); fi
        for side in "${sides[@]}"; do run "$route" "$side"; done
    done
done

# The median of column $2 of file $1.
median() {
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}

echo
echo "| route | session layer | requests/s | p50 (ms) | p99 (ms) | server CPU (µs/request) |"
echo "|---|---|---:|---:|---:|---:|"
for route in read write; do
    sides=(session plain)
    if [[ "$route" == read ]]; then sides+=(visitor floor); fi
    for side in "${sides[@]}"; do
        case "$side" in
            session) label="yes" ;;
            visitor) label="yes, no cookie (a visitor without a session)" ;;
            floor) label="no; the floor instead (examples/load_floor.rs)" ;;
            *) label="no (--no-session-layer)" ;;
        esac
        path=$([[ "$route" == read ]] && echo "GET /bench/read" || echo "POST /bench/write")
        file="$work/$route-$side"
        printf '| `%s` | %s | %.0f | %s | %s | %s |\n' "$path" "$label" "$(median "$file" 1)" \
            "$(median "$file" 2)" "$(median "$file" 3)" "$(median "$file" 4)"
    done
done
echo
# What side $2 costs against the plain side of route $1, with the words $3.
compare() {
    local with without cpu_with cpu_without
    with="$(median "$work/$1-$2" 1)"
    without="$(median "$work/$1-plain" 1)"
    cpu_with="$(median "$work/$1-$2" 4)"
    cpu_without="$(median "$work/$1-plain" 4)"
    awk -v r="$3" -v a="$with" -v b="$without" -v c="$cpu_with" -v d="$cpu_without" 'BEGIN {
        printf "%s %.1f%% of requests/s (median %.0f vs %.0f) and adds %.1f us of server CPU per request (%.1f vs %.1f)\n", r, (1 - a / b) * 100, a, b, c - d, c, d
    }'
}
compare read session "read: the session layer costs"
compare write session "write: the session layer costs"
compare read visitor "read, no cookie: the session layer costs"
compare read floor "read, the floor (any encrypted cookie) costs"
