#!/usr/bin/env bash
# sealed-session against the session libraries a user would pick instead, over HTTP, in one run.
#
# Every contender is one process of the peers/ package (its own workspace: none of these
# libraries enters sealed-session's dependency tree), serving the same routes with the same
# bodies (peers/src/main.rs):
#
#   POST /login   a new session: `user`, a 10-line cart (~575 bytes of JSON), a CSRF token
#   GET  /read    reads `user`, changes nothing (wrk sends the Cookie header of a login)
#   POST /write   increments `n` and saves the session (every response saves it again)
#   POST /probe   stores the request body under `blob` (the size probe, below)
#
# Contenders: sealed-session on axum (its tower layer around the router) and on actix-web (its
# middleware); tower-sessions 0.14 with MemoryStore and with tower-sessions-redis-store;
# tower-sessions-cookie-store (private cookies); axum-extra's PrivateCookieJar holding the state
# as one JSON cookie; actix-session with CookieSessionStore and RedisSessionStore; axum and
# actix-web without sessions.
#
# Placement: every server on CPU 0 (taskset), one worker each; wrk -t1 -c8 on CPU 1. The Redis
# peers use one redis-server the script starts on a free port of 127.0.0.1, also on CPU 0
# (REDIS_CPU), so that it never takes wrk's CPU; its CPU time is measured separately. For each
# run: a fresh login (curl), the server's CPU time (utime + stime from /proc/PID/stat) and
# Redis's around one `wrk --latency` run, and Redis's command count (INFO stats). The order of
# the contenders rotates every round, so that a busy stretch of a shared machine does not hit
# the same contender every time; the tables give the median of ROUNDS runs of each cell, and
# the ratios of those medians to sealed-session on the same framework.
#
# The size probe: each contender, after a login, is asked to store states that do not fit one
# cookie (../shared/corpus/history.json, and 4, 6 and 16 KB of random base64, which no
# compression shrinks much); the report says whether it answers an error (and which status),
# a Set-Cookie line over 4096 bytes (which browsers drop without a word: the session silently
# stays as it was), or stores it.
#
# A network round trip to Redis: `tc netem` needs a kernel module that is not on every machine
# (the script tests for it in a throwaway network namespace and says which); the script uses a
# proxy of its own instead (`peers delay-proxy`, on wrk's CPU), and runs each Redis peer a second
# time with Redis behind it. The report also computes the effect of other round trips (RTTS)
# from the measured Redis commands per request, each of which waits one round trip in turn.
#
# Environment: ROUNDS (default 3), DURATION (wrk -d, default 10s, below 60s: sealed-session
# reseals a session older than its 60 s refresh interval, and wrk replays one Cookie header),
# CONNECTIONS (wrk -c, default 8), CONTENDERS (names, space-separated; default all), RTT_MS
# (the round trip the proxy adds, default 1; empty skips those runs), RTTS (round trips to
# compute, in ms, default "0.2 1"), REDIS_CPU (default 0).
# Options: --write puts the report into BENCHMARKS.md between `<!-- peers:begin -->` and
# `<!-- peers:end -->`. Needs wrk, curl, taskset, redis-server and redis-cli
# (bash scripts/install-deps.sh) and two CPUs. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-3}"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-8}"
RTTS="${RTTS:-0.2 1}"
RTT_MS="${RTT_MS-1}"
REDIS_CPU="${REDIS_CPU:-0}"
ALL_CONTENDERS="sealed-axum tower-memory tower-redis tower-cookie axum-private-jar axum-plain"
ALL_CONTENDERS+=" sealed-actix actix-cookie actix-redis actix-plain"
read -r -a contenders <<<"${CONTENDERS:-$ALL_CONTENDERS}"
write_report=0
for arg in "$@"; do
    case "$arg" in
        --write) write_report=1 ;;
        *) echo "usage: [ROUNDS=3 DURATION=10s ...] $0 [--write]" >&2; exit 2 ;;
    esac
done

if [[ ! "$DURATION" =~ ^[0-9]+s$ ]] || ((${DURATION%s} >= 60)); then
    echo "DURATION must be whole seconds below the session refresh interval (60s): $DURATION" >&2
    exit 1
fi
for tool in wrk curl taskset redis-server redis-cli; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: bash scripts/install-deps.sh" >&2; exit 1; }
done
(($(nproc) >= 2)) || { echo "needs two CPUs (servers on CPU 0, wrk on CPU 1)" >&2; exit 1; }
client_cpu=(taskset -c 1)

started="$(date -u '+%Y-%m-%d %H:%M')"
load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
cargo build --release --manifest-path peers/Cargo.toml --quiet
target_dir="$(cargo metadata --format-version 1 --no-deps --manifest-path peers/Cargo.toml |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
peers="$target_dir/release/peers"

work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
# A signal (Ctrl-C, a closed pipe) exits through the EXIT trap too, so nothing is left running.
trap 'exit 1' INT TERM HUP PIPE

# The CPU time (user + system) a process has used, in clock ticks.
cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$1/stat"
}
ticks_per_second="$(getconf CLK_TCK)"

# --- Redis, on a free port of 127.0.0.1 (a few random ports are tried) ---
needs_redis=0
for name in "${contenders[@]}"; do
    if [[ "$name" == *-redis ]]; then needs_redis=1; fi
done
redis_port="" redis_pid=""
if ((needs_redis)); then
    for _ in $(seq 20); do
        port=$((20000 + RANDOM % 40000))
        taskset -c "$REDIS_CPU" redis-server --port "$port" --bind 127.0.0.1 --save '' \
            --appendonly no --daemonize no >"$work/redis.log" 2>&1 &
        redis_pid=$!
        for _ in $(seq 50); do
            if redis-cli -p "$port" ping >/dev/null 2>&1; then redis_port="$port"; break; fi
            kill -0 "$redis_pid" 2>/dev/null || break
            sleep 0.1
        done
        if [[ -n "$redis_port" ]]; then pids+=("$redis_pid"); break; fi
        kill "$redis_pid" 2>/dev/null || true
        wait "$redis_pid" 2>/dev/null || true
    done
    [[ -n "$redis_port" ]] || { echo "redis-server did not start: $(cat "$work/redis.log")" >&2; exit 1; }
fi
redis_commands() {
    redis-cli -p "$redis_port" info stats | tr -d '\r' | sed -n 's/^total_commands_processed://p'
}

# --- The contenders, each on CPU 0 ---
# Starts `peers $2 ARGS...` on CPU $1, known as $3 in ${url[]} and ${pid[]}.
declare -A url pid
start() {
    local cpu="$1" name="$2" key="$3" log="$work/$3.log" address
    shift 3
    : >"$log" # before the process starts: the redirection below happens in the child
    taskset -c "$cpu" "$peers" "$name" "$@" >"$log" 2>&1 &
    pid[$key]=$!
    pids+=($!)
    for _ in $(seq 100); do
        address="$(sed -n 's/^peers .* listening on //p' "$log")"
        if [[ -n "$address" ]]; then url[$key]="${address%/}"; return; fi
        kill -0 "${pid[$key]}" 2>/dev/null || break
        sleep 0.1
    done
    echo "$key did not start: $(cat "$log")" >&2
    exit 1
}
for name in "${contenders[@]}"; do
    if [[ "$name" == *-redis ]]; then
        start 0 "$name" "$name" --redis "redis://127.0.0.1:$redis_port/"
    else
        start 0 "$name" "$name"
    fi
done

# Log in at contender $1; the session's cookies as one Cookie header value in $cookie.
login() {
    cookie="$(curl -s -o /dev/null -D - -X POST "${url[$1]}/login" |
        sed -n 's/^[Ss]et-[Cc]ookie: \([^;]*\).*/\1/p' | paste -sd ';' | sed 's/;/; /g')"
    if [[ -z "$cookie" && "$1" != *-plain ]]; then echo "$1: no cookie from /login" >&2; exit 1; fi
}

# Each contender sees its login, answers the same bodies, and its read route sets no cookie
# (a read that saves would measure saving too; noted in the report if a peer does).
declare -A read_sets_cookie
for name in "${contenders[@]}"; do
    login "$name"
    headers="$(curl -s -D - -o "$work/body" -H "Cookie: $cookie" "${url[$name]}/read")"
    [[ "$(cat "$work/body")" == "hello, bench" ]] ||
        { echo "$name: /read does not see the login: $(cat "$work/body")" >&2; exit 1; }
    if grep -qi '^set-cookie' <<<"$headers"; then read_sets_cookie[$name]=1; else read_sets_cookie[$name]=0; fi
    body="$(curl -s -X POST -H "Cookie: $cookie" "${url[$name]}/write")"
    [[ "${#body}" == 20 ]] || { echo "$name: /write answered '$body'" >&2; exit 1; }
done
printf 'wrk.method = "POST"\n' >"$work/post.lua"

# Milliseconds from a wrk latency ("812.00us", "1.23ms", "2.01s").
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n
    }'
}

# One wrk run of route $1 against contender $2: appends
# "rps p50 p99 server_cpu_us redis_cpu_us redis_commands" (per request) to $work/<route>-<name>.
run() {
    local route="$1" name="$2" args=()
    login "$name"
    [[ -z "$cookie" ]] || args+=(-H "Cookie: $cookie")
    if [[ "$route" == write ]]; then args+=(-s "$work/post.lua"); fi
    local out before after redis_before=0 redis_after=0 commands_before=0 commands_after=0
    if [[ "$name" == *-redis* ]]; then
        commands_before="$(redis_commands)"
        redis_before="$(cpu_ticks "$redis_pid")"
    fi
    before="$(cpu_ticks "${pid[$name]}")"
    out="$("${client_cpu[@]}" wrk -t1 -c"$CONNECTIONS" -d"$DURATION" --latency "${args[@]}" "${url[$name]}/$route")"
    after="$(cpu_ticks "${pid[$name]}")"
    if [[ "$name" == *-redis* ]]; then
        redis_after="$(cpu_ticks "$redis_pid")"
        # The INFO call itself is one command.
        commands_after="$(($(redis_commands) - 1))"
    fi
    if grep -q "Non-2xx\|Socket errors" <<<"$out"; then echo "$out" >&2; echo "$name $route: errors" >&2; exit 1; fi
    local rps p50 p99 requests line
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p50="$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")"
    p99="$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")"
    requests="$(awk '/ requests in / {print $1}' <<<"$out")"
    line="$(awk -v s=$((after - before)) -v r=$((redis_after - redis_before)) \
        -v c=$((commands_after - commands_before)) -v hz="$ticks_per_second" -v n="$requests" \
        -v rps="$rps" -v p50="$p50" -v p99="$p99" \
        'BEGIN {printf "%s %s %s %.2f %.2f %.2f", rps, p50, p99, s / hz * 1e6 / n, r / hz * 1e6 / n, c / n}')"
    echo "$line" >>"$work/$route-$name"
    read -r rps p50 p99 cpu redis_cpu commands <<<"$line"
    printf '  %-5s %-17s %9.0f req/s  p50 %6s ms  p99 %6s ms  server CPU %6s us/req' \
        "$route" "$name" "$rps" "$p50" "$p99" "$cpu"
    if [[ "$name" == *-redis* ]]; then printf '  Redis CPU %5s us/req, %s commands/req' "$redis_cpu" "$commands"; fi
    echo
}

echo "wrk -t1 -c$CONNECTIONS -d$DURATION --latency, $ROUNDS rounds, servers on CPU 0, wrk on CPU 1"
for round in $(seq "$ROUNDS"); do
    echo "round $round/$ROUNDS"
    # Rotate the order by one contender every round.
    shift_by=$(((round - 1) % ${#contenders[@]}))
    order=("${contenders[@]:shift_by}" "${contenders[@]:0:shift_by}")
    for route in read write; do
        for name in "${order[@]}"; do run "$route" "$name"; done
    done
done

# --- The Redis peers behind a network round trip of RTT_MS, measured ---
# tc netem would be the tool; the kernel here may not have it (tested below, for the report),
# so a user-space proxy (peers delay-proxy, on wrk's CPU) delays each direction by RTT_MS / 2.
# A second instance of each Redis peer talks to Redis through it; they alternate as above.
delayed=()
if [[ -n "$RTT_MS" && -n "$redis_port" ]]; then
    start 1 delay-proxy delay-proxy "127.0.0.1:$redis_port" "$(awk -v r="$RTT_MS" 'BEGIN {print r / 2}')"
    proxy="${url[delay-proxy]}"
    # The round trip as Redis's own client sees it through the proxy (mean of 2 s of PINGs).
    rtt_seen="$(timeout 2 redis-cli -h 127.0.0.1 -p "${proxy##*:}" --latency 2>/dev/null | tail -1 | awk '{print $3}' || true)"
    for name in "${contenders[@]}"; do
        if [[ "$name" == *-redis ]]; then
            start 0 "$name" "$name+rtt" --redis "redis://$proxy/"
            delayed+=("$name+rtt")
        fi
    done
    echo "Redis peers through a round trip of $RTT_MS ms (redis-cli --latency sees ${rtt_seen:-?} ms)"
    for round in $(seq "$ROUNDS"); do
        echo "round $round/$ROUNDS"
        order=("${delayed[@]}")
        if ((round % 2 == 0)); then
            order=()
            for ((i = ${#delayed[@]} - 1; i >= 0; i--)); do order+=("${delayed[i]}"); done
        fi
        for route in read write; do
            for name in "${order[@]}"; do run "$route" "$name"; done
        done
    done
fi
load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
finished="$(date -u '+%H:%M')"

# --- The size probe ---
probe_dir="$work/probes"
mkdir -p "$probe_dir"
corpus=../shared/corpus/history.json
probes=()
if [[ -f "$corpus" ]]; then cp "$corpus" "$probe_dir/history"; probes+=(history); fi
# Random bytes in base64: about 3/4 of the length survives any compression.
printf '"%s"' "$(head -c 3000 /dev/urandom | base64 -w0)" >"$probe_dir/random4k"
printf '"%s"' "$(head -c 4500 /dev/urandom | base64 -w0)" >"$probe_dir/random6k"
printf '"%s"' "$(head -c 12000 /dev/urandom | base64 -w0)" >"$probe_dir/random16k"
probes+=(random4k random6k random16k)
probe_label() {
    case "$1" in
        history) echo "history.json ($(wc -c <"$probe_dir/history") B of JSON)" ;;
        random4k) echo "4 KB of random base64" ;;
        random6k) echo "6 KB of random base64" ;;
        random16k) echo "16 KB of random base64" ;;
    esac
}
# What contender $1 does when asked to store probe $2: one table cell.
probe() {
    local name="$1" file="$probe_dir/$2" status lines longest count
    login "$name"
    curl -s -o /dev/null -D "$work/probe-headers" -X POST -H "Cookie: $cookie" \
        -H 'Content-Type: application/json' --data-binary "@$file" "${url[$name]}/probe" || true
    status="$(awk 'NR == 1 {print $2}' "$work/probe-headers")"
    lines="$(sed -n 's/^[Ss]et-[Cc]ookie: //p' "$work/probe-headers" | tr -d '\r')"
    count="$(grep -c . <<<"$lines" || true)"
    longest="$(awk '{ if (length($0) > m) m = length($0) } END {print m + 0}' <<<"$lines")"
    if [[ "$status" != 2* ]]; then
        echo "error: HTTP $status"
    elif ((longest > 4096)); then
        echo "**dropped by browsers**: HTTP $status with a Set-Cookie of $longest B"
    elif [[ "$name" == *-redis || "$name" == tower-memory ]]; then
        echo "stored (server side); HTTP $status"
    else
        echo "stored: $count cookie(s), longest Set-Cookie $longest B"
    fi
}

# --- netem, if the kernel has it (tried in a throwaway network namespace) ---
netem="no"
if command -v ip >/dev/null && command -v tc >/dev/null; then
    ns="peers-probe-$$"
    if ip netns add "$ns" 2>/dev/null; then
        if ip netns exec "$ns" tc qdisc add dev lo root netem delay 1ms 2>"$work/netem.err"; then
            netem="yes"
        fi
        ip netns del "$ns" 2>/dev/null || true
    else
        echo "cannot create a network namespace" >"$work/netem.err"
    fi
else
    echo "ip or tc is missing (iproute2)" >"$work/netem.err"
fi

# --- The report ---
median() {
    awk -v c="$2" '{print $c}' "$1" | sort -g | awk '{v[NR] = $1} END {
        if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
    }'
}
label() {
    case "$1" in
        sealed-axum) echo "sealed-session (axum, SessionLayer)" ;;
        tower-memory) echo "tower-sessions 0.14, MemoryStore" ;;
        tower-redis) echo "tower-sessions 0.14 + tower-sessions-redis-store 0.16" ;;
        tower-cookie) echo "tower-sessions-cookie-store 0.5 (private)" ;;
        axum-private-jar) echo "axum-extra PrivateCookieJar (one JSON cookie)" ;;
        axum-plain) echo "axum, no session" ;;
        sealed-actix) echo "sealed-session (actix-web, SessionMiddleware)" ;;
        actix-cookie) echo "actix-session 0.11, CookieSessionStore" ;;
        actix-redis) echo "actix-session 0.11, RedisSessionStore" ;;
        actix-plain) echo "actix-web, no session" ;;
    esac
}
# sealed-session on the framework of contender $1.
baseline() {
    if [[ "$1" == actix-* || "$1" == sealed-actix ]]; then echo sealed-actix; else echo sealed-axum; fi
}
# The ratio of the medians of column $3 of files $1 and $2, or "-" when either is missing.
ratio_of() {
    [[ -f "$1" && -f "$2" ]] || { echo "-"; return; }
    awk -v a="$(median "$1" "$3")" -v b="$(median "$2" "$3")" 'BEGIN {printf "%.2fx", a / b}'
}
# The ratio of column $3 of route $1 for contender $2 (maybe "NAME+rtt") to its baseline's.
ratio() {
    ratio_of "$work/$1-$2" "$work/$1-$(baseline "${2%+rtt}")" "$3"
}

# The `aes` versions peers/Cargo.lock resolves (0.8 for the cookie-crate peers, 0.9 for ours).
aes_versions() {
    awk '/^name = "aes"$/ {getline; gsub(/[^0-9.]/, ""); printf "%s`aes` %s", sep, $0; sep = ", "}' \
        peers/Cargo.lock
}

# Column 4 (server CPU) of route $1: sealed-session $2 over peer $3, "median (lowest to highest
# round)", each round's sealed-session run divided by the same round's peer run.
target_ratio() {
    local ours="$work/$1-$2" theirs="$work/$1-$3"
    [[ -f "$ours" && -f "$theirs" ]] || { echo "-"; return; }
    local median_ratio
    median_ratio="$(awk -v a="$(median "$ours" 4)" -v b="$(median "$theirs" 4)" 'BEGIN {printf "%.2f", a / b}')"
    paste -d' ' <(awk '{print $4}' "$ours") <(awk '{print $4}' "$theirs") | awk -v m="$median_ratio" '
        { r = $1 / $2; if (NR == 1 || r < lo) lo = r; if (NR == 1 || r > hi) hi = r }
        END { printf "%s %.2f %.2f\n", m, lo, hi }'
}
# The "best" (cheapest by median server CPU) of the contenders named, on route $1.
cheapest() {
    local route="$1" best="" best_cpu=""
    shift
    for name in "$@"; do
        [[ -f "$work/$route-$name" ]] || continue
        local cpu
        cpu="$(median "$work/$route-$name" 4)"
        if [[ -z "$best" ]] || awk -v a="$cpu" -v b="$best_cpu" 'BEGIN {exit !(a < b)}'; then
            best="$name" best_cpu="$cpu"
        fi
    done
    echo "$best"
}
# The peer targets (issue 19, with the read limits against MemoryStore and actix-session's Redis
# store as issue 27 accepted them): sealed-session's server CPU over the peer's, on the same
# framework.
targets() {
    echo "**Targets** (issues 19 and 27): sealed-session's server CPU per request over the peer's on the"
    echo "same framework, the ratio of the medians, and in brackets the lowest and highest ratio of"
    echo "one round's runs (both runs of a pair are from the same round):"
    echo
    echo "| route | sealed-session over | ratio (rounds) | limit | verdict |"
    echo "|---|---|---:|---:|---|"
    local row route ours peer limit measured median_ratio lo hi
    for row in "read sealed-axum tower-memory 0.8" "read sealed-actix actix-cookie 0.8" \
        "write sealed-axum $(cheapest write tower-memory axum-private-jar) 0.9" \
        "write sealed-actix actix-cookie 0.9" "read sealed-axum tower-redis 0.5" \
        "read sealed-actix actix-redis 0.55"; do
        read -r route ours peer limit <<<"$row"
        [[ -n "$peer" ]] || continue
        measured="$(target_ratio "$route" "$ours" "$peer")"
        [[ "$measured" != - ]] || continue
        read -r median_ratio lo hi <<<"$measured"
        local verdict="met"
        awk -v m="$median_ratio" -v l="$limit" 'BEGIN {exit !(m > l)}' && verdict="**not met**"
        local what="$(label "$peer")"
        [[ "$route" == write && "$ours" == sealed-axum ]] && what="$what (the cheaper of MemoryStore and PrivateCookieJar)"
        [[ "$peer" == *-redis ]] && what="$what, before Redis's own CPU"
        printf '| %s | %s | %sx (%s to %s) | %sx | %s |\n' "$route" "$what" "$median_ratio" "$lo" "$hi" \
            "$limit" "$verdict"
    done
    echo
}

report() {
    local rev
    rev="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src peers || echo ' (with uncommitted changes)')"
    echo "Command: \`ROUNDS=$ROUNDS DURATION=$DURATION bash scripts/peers.sh\`; commit \`$rev\`;"
    echo "$started to $finished UTC; $(nproc) CPUs, \`$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)\`,"
    echo "kernel $(uname -r), $(rustc --version | cut -d' ' -f1-2); load average (1, 5, 15 min) before: $load_before,"
    echo "after: $load_after. Servers (one worker each) and redis-server on CPU 0, \`wrk -t1 -c$CONNECTIONS -d$DURATION\`"
    echo "on CPU 1; medians of $ROUNDS alternating rounds. CPU columns are µs of CPU time (user +"
    echo "system) per request; \"vs sealed-session\" divides by sealed-session on the same framework."
    echo "Cipher crates as \`peers/Cargo.lock\` holds them: $(aes_versions) (sealed-session's own lock file"
    echo "and the README's advice for AVX-512 servers: \`aes\` 0.9.2; see \"Which \`aes\` crate\" above)."
    echo
    echo "| route | contender | requests/s | p50 (ms) | p99 (ms) | server CPU (µs/req) | server CPU vs sealed-session | requests/s vs sealed-session | Redis CPU (µs/req) | Redis commands/req |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    for route in read write; do
        for name in "${contenders[@]}"; do
            file="$work/$route-$name"
            local redis_cpu="" commands=""
            if [[ "$name" == *-redis ]]; then
                redis_cpu="$(median "$file" 5)" commands="$(median "$file" 6)"
            fi
            local note=""
            if [[ "$route" == read && "${read_sets_cookie[$name]}" == 1 ]]; then note=" (sets a cookie on read)"; fi
            printf '| %s | %s%s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n' "$route" "$(label "$name")" \
                "$note" "$(median "$file" 1)" "$(median "$file" 2)" "$(median "$file" 3)" \
                "$(median "$file" 4)" "$(ratio "$route" "$name" 4)" "$(ratio "$route" "$name" 1)" \
                "$redis_cpu" "$commands"
        done
    done
    echo
    echo "Server CPU per request relative to sealed-session on the same framework (lower is cheaper"
    echo "for the peer; above 1.00x, sealed-session is cheaper):"
    echo
    local peers_only=()
    for name in "${contenders[@]}"; do [[ "$name" == sealed-* ]] || peers_only+=("$name"); done
    printf '| route |'
    for name in "${peers_only[@]}"; do printf ' %s |' "$(label "$name")"; done
    printf '\n|---|'
    for _ in "${peers_only[@]}"; do printf -- '---:|'; done
    echo
    for route in read write; do
        printf '| %s |' "$route"
        for name in "${peers_only[@]}"; do
            local cell
            cell="$(ratio "$route" "$name" 4)"
            if [[ "$name" == *-redis && "$cell" != - ]]; then cell="$cell (+ Redis $(median "$work/$route-$name" 5) µs)"; fi
            printf ' %s |' "$cell"
        done
        echo
    done
    echo
    targets
    echo "**State that does not fit one cookie** (after a login, \`POST /probe\` stores the body"
    echo "under \`blob\`; a browser drops a Set-Cookie line over 4096 bytes without a word, so the"
    echo "session silently stays as it was):"
    echo
    printf '| contender |'
    for p in "${probes[@]}"; do printf ' %s |' "$(probe_label "$p")"; done
    printf '\n|---|'
    for _ in "${probes[@]}"; do printf -- '---|'; done
    echo
    for name in "${contenders[@]}"; do
        [[ "$name" == *-plain ]] && continue
        printf '| %s |' "$(label "$name")"
        for p in "${probes[@]}"; do printf ' %s |' "$(probe "$name" "$p")"; done
        echo
    done
    echo
    [[ -n "$redis_port" ]] || return 0
    echo "**A network round trip to Redis.** $(if [[ "$netem" == yes ]]; then
        echo "This kernel has \`tc netem\`, but the script delays with its own proxy instead."
    else
        echo "\`tc qdisc ... netem\` is not available on this machine ($(tr -d '\n' <"$work/netem.err")),"
        echo "so the script delays with a proxy of its own instead."
    fi) Each Redis peer runs a second time with Redis behind \`peers delay-proxy\`"
    echo "(peers/src/delay_proxy.rs, on wrk's CPU), which holds every chunk RTT_MS / 2 in each direction"
    echo "(threads: tokio's timer rounds up to whole milliseconds). sealed-session keeps no state on the"
    echo "server, so its rows do not change."
    echo
    if ((${#delayed[@]})); then
        echo "Measured, RTT_MS=$RTT_MS (\`redis-cli --latency\` through the proxy: ${rtt_seen:-?} ms on average):"
        echo
        echo "| route | contender | requests/s | p50 (ms) | p99 (ms) | server CPU (µs/req) | server CPU vs sealed-session | requests/s vs sealed-session | Redis CPU (µs/req) |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        for route in read write; do
            for name in "${delayed[@]}"; do
                local file="$work/$route-$name"
                printf '| %s | %s | %.0f | %s | %s | %s | %s | %s | %s |\n' "$route" "$(label "${name%+rtt}")" \
                    "$(median "$file" 1)" "$(median "$file" 2)" "$(median "$file" 3)" "$(median "$file" 4)" \
                    "$(ratio "$route" "$name" 4)" "$(ratio "$route" "$name" 1)" \
                    "$(median "$file" 5)"
            done
        done
        echo
    fi
    echo "Computed from the runs without delay: each Redis command a request sends waits one round"
    echo "trip before the next step, so a round trip of R ms adds (commands/request x R) ms to every"
    echo "request's latency, and at $CONNECTIONS connections requests/s becomes"
    echo "$CONNECTIONS / ($CONNECTIONS / measured requests/s + commands x R) (Little's law):"
    echo
    printf '| route | contender | commands/req |'
    for r in $RTTS; do printf ' p50 at RTT %s ms | requests/s at RTT %s ms |' "$r" "$r"; done
    printf '\n|---|---|---:|'
    for _ in $RTTS; do printf -- '---:|---:|'; done
    echo
    for route in read write; do
        for name in "${contenders[@]}"; do
            [[ "$name" == *-redis ]] || continue
            local file="$work/$route-$name" rps p50 commands
            rps="$(median "$file" 1)" p50="$(median "$file" 2)" commands="$(median "$file" 6)"
            printf '| %s | %s | %s |' "$route" "$(label "$name")" "$commands"
            for r in $RTTS; do
                awk -v rps="$rps" -v p50="$p50" -v k="$commands" -v r="$r" -v c="$CONNECTIONS" \
                    'BEGIN {printf " %.3f | %.0f |", p50 + k * r, c / (c / rps + k * r / 1000)}'
            done
            echo
        done
    done
}

report >"$work/report.md"
echo
cat "$work/report.md"
if ((write_report)); then
    grep -q '<!-- peers:begin -->' BENCHMARKS.md ||
        { echo "BENCHMARKS.md has no <!-- peers:begin --> marker" >&2; exit 1; }
    awk -v report="$work/report.md" '
        /<!-- peers:begin -->/ { print; while ((getline line < report) > 0) print line; skip = 1; next }
        /<!-- peers:end -->/ { skip = 0 }
        !skip { print }
    ' BENCHMARKS.md >"$work/BENCHMARKS.md"
    cp "$work/BENCHMARKS.md" BENCHMARKS.md
    echo "wrote the report into BENCHMARKS.md"
fi
