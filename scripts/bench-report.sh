#!/usr/bin/env bash
# Regenerates the benchmark tables of BENCHMARKS.md and the plots under docs/bench/ in one go:
#
#   1. installs redis-server with apt-get if it is missing, and starts one on 127.0.0.1 on a
#      random free port (no persistence), stopped again when the script exits;
#   2. runs the benches `codec`, `floor` and `growth`, which write their measurements to
#      target/bench-report/*.json (the Redis address is in SEALED_SESSION_BENCH_REDIS);
#   3. records the machine (CPU, load, rustc, commit) in target/bench-report/machine.json;
#   4. creates a Python venv under target/bench-report/venv with matplotlib, and runs
#      scripts/plots.py, which writes docs/bench/*.svg and rewrites the tables of
#      BENCHMARKS.md between their `<!-- NAME:begin -->` and `<!-- NAME:end -->` markers.
#
# The benches and redis-server run on one CPU (BENCH_CPU, default 0; BENCH_CPU=none leaves the
# scheduler free). A loopback round trip between two CPUs of a virtual machine costs whatever
# waking an idle virtual CPU costs (about 70 us on the machine of BENCHMARKS.md when it was
# otherwise idle, against 6 us on one CPU or when the machine was busy): on one CPU Redis gets
# its fastest, steadiest round trip, and our side no migrations.
#
# Usage: scripts/bench-report.sh            everything (about 15 minutes on a loaded 2-CPU VM)
#        scripts/bench-report.sh --no-bench  only step 4, from the JSON of an earlier run
set -euo pipefail
cd "$(dirname "$0")/.."

REPORT_DIR="$PWD/target/bench-report"
VENV="$REPORT_DIR/venv"
MATPLOTLIB="matplotlib==3.10.7"
BENCHES=(codec floor growth)

run_benches=true
case "${1:-}" in
    "") ;;
    --no-bench) run_benches=false ;;
    *) echo "usage: $0 [--no-bench]" >&2; exit 2 ;;
esac

mkdir -p "$REPORT_DIR"

export BENCH_CPU="${BENCH_CPU:-0}"
pin=()
if [[ "$BENCH_CPU" != none ]]; then
    command -v taskset >/dev/null || { echo "taskset is missing (util-linux); or BENCH_CPU=none" >&2; exit 1; }
    pin=(taskset -c "$BENCH_CPU")
fi

machine_json() {
    # $1: "before" or "after"; appends the load average to machine.json.
    python3 - "$REPORT_DIR/machine.json" "$1" <<'EOF'
import json, os, platform, subprocess, sys, time
path, when = sys.argv[1], sys.argv[2]
def run(*cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
info = {}
if when == "before":
    model = None
    for line in (run("lscpu") or "").splitlines():
        if line.startswith("Model name:"):
            model = line.split(":", 1)[1].strip()
    info = {
        "cpu": model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "rustc": run("rustc", "--version"),
        "redis": run("redis-server", "--version"),
        "commit": run("git", "rev-parse", "--short", "HEAD"),
        "dirty": bool(run("git", "status", "--porcelain", "--untracked-files=no")),
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "bench_cpu": os.environ.get("BENCH_CPU", "0"),
    }
else:
    with open(path) as f:
        info = json.load(f)
    info["finished"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
info[f"load_{when}"] = list(os.getloadavg())
with open(path, "w") as f:
    json.dump(info, f, indent=2)
    f.write("\n")
EOF
}

if $run_benches; then
    if ! command -v redis-server >/dev/null 2>&1; then
        echo "--- installing redis-server"
        sudo=()
        if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
        export DEBIAN_FRONTEND=noninteractive
        "${sudo[@]}" apt-get update
        "${sudo[@]}" apt-get install -y --no-install-recommends redis-server
    fi

    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis_dir=$(mktemp -d)
    echo "--- starting redis-server on 127.0.0.1:$port"
    "${pin[@]}" redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
        --dir "$redis_dir" --daemonize no --loglevel warning >"$REPORT_DIR/redis.log" 2>&1 &
    redis_pid=$!
    stop_redis() {
        if kill -0 "$redis_pid" 2>/dev/null; then
            kill "$redis_pid"
            wait "$redis_pid" 2>/dev/null || true
        fi
        rm -rf "$redis_dir"
    }
    trap stop_redis EXIT
    # Wait for it to answer (a PING over bash's /dev/tcp, so redis-cli is not needed).
    for _ in $(seq 50); do
        if { exec 3<>"/dev/tcp/127.0.0.1/$port"; } 2>/dev/null; then
            printf 'PING\r\n' >&3
            read -r -t 1 reply <&3 || reply=
            exec 3>&-
            if [[ "$reply" == +PONG* ]]; then break; fi
        fi
        if ! kill -0 "$redis_pid" 2>/dev/null; then
            echo "redis-server exited:" >&2
            cat "$REPORT_DIR/redis.log" >&2
            exit 1
        fi
        sleep 0.1
    done
    [[ "${reply:-}" == +PONG* ]] || { echo "redis-server does not answer on port $port" >&2; exit 1; }

    export SEALED_SESSION_BENCH_REDIS="127.0.0.1:$port"
    export SEALED_SESSION_BENCH_REPORT_DIR="$REPORT_DIR"
    for bench in "${BENCHES[@]}"; do rm -f "$REPORT_DIR/$bench.json"; done
    machine_json before
    for bench in "${BENCHES[@]}"; do
        echo "--- cargo bench --bench $bench (log: target/bench-report/$bench.log)"
        # Build on every CPU, then measure on the pinned one.
        cargo bench --bench "$bench" --no-run >"$REPORT_DIR/$bench.log" 2>&1 &&
            "${pin[@]}" cargo bench --bench "$bench" >>"$REPORT_DIR/$bench.log" 2>&1 || {
            tail -40 "$REPORT_DIR/$bench.log" >&2
            exit 1
        }
        test -s "$REPORT_DIR/$bench.json" || { echo "$bench wrote no report" >&2; exit 1; }
    done
    machine_json after
    stop_redis
    trap - EXIT
fi

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "--- creating $VENV"
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import matplotlib" 2>/dev/null; then
    echo "--- pip install $MATPLOTLIB"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MATPLOTLIB"
fi
echo "--- scripts/plots.py"
"$VENV/bin/python" scripts/plots.py "$REPORT_DIR"
