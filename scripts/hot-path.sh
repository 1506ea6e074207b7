#!/usr/bin/env bash
# Instructions per request on the peers' benchmark state (examples/hot_path.rs), counted with
# callgrind: unlike a timing, the count does not move with the load of a shared machine, so two
# commits can be compared on a busy one. Prints one line per path and route.
#
# Needs valgrind (`apt-get install valgrind`). Usage: scripts/hot-path.sh [--metrics] [REQUESTS]
# (default 2000; the count is divided by it, so one-time setup such as the first zstd context is
# spread thin). With --metrics it counts twice, without the `metrics` feature and with it and a
# Prometheus recorder installed, and prints both with the difference. The callgrind files stay
# in target/hot-path/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

metrics=false
if [ "${1:-}" = "--metrics" ]; then
    metrics=true
    shift
fi
requests="${1:-2000}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
out=target/hot-path
mkdir -p "$out"

# Counts the four cases with `features`; prints "path route count" lines.
count() {
    local features="$1" tag="$2"
    cargo build --release --example hot_path --features "$features" >&2
    for path in codec tower; do
        for route in read write; do
            file="$out/callgrind.$path.$route$tag"
            # Only the counted loop (`requests_codec` or `requests_tower`), not the setup.
            valgrind --tool=callgrind --callgrind-out-file="$file" \
                --toggle-collect='*hot_path::requests_*' \
                target/release/examples/hot_path "$path" "$route" "$requests" >/dev/null 2>"$file.log"
            total=$(awk '/^(summary|totals):/ { print $2; exit }' "$file")
            echo "$path $route $((total / requests))"
        done
    done
}

if ! $metrics; then
    count axum "" | while read -r path route n; do
        echo "$path $route: $n instructions per request"
    done
    exit 0
fi
off=$(count axum "")
on=$(count axum,metrics ".metrics")
paste -d' ' <(echo "$off") <(echo "$on") | while read -r path route n _ _ m; do
    echo "$path $route: $n instructions per request, $m with metrics ($(awk -v a="$n" -v b="$m" 'BEGIN { printf "%+.1f%%", (b - a) * 100 / a }'))"
done
