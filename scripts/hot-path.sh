#!/usr/bin/env bash
# Instructions per request on the peers' benchmark state (examples/hot_path.rs), counted with
# callgrind: unlike a timing, the count does not move with the load of a shared machine, so two
# commits can be compared on a busy one. Prints one line per path and route.
#
# Needs valgrind (`apt-get install valgrind`). Usage: scripts/hot-path.sh [REQUESTS] (default
# 2000; the count is divided by it, so one-time setup such as the first zstd context is spread
# thin). The callgrind files stay in target/hot-path/ for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."

requests="${1:-2000}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
cargo build --release --example hot_path --features axum
out=target/hot-path
mkdir -p "$out"
for path in codec tower; do
    for route in read write; do
        file="$out/callgrind.$path.$route"
        # Only the counted loop (`requests_codec` or `requests_tower`), not the setup.
        valgrind --tool=callgrind --callgrind-out-file="$file" \
            --toggle-collect='*hot_path::requests_*' \
            target/release/examples/hot_path "$path" "$route" "$requests" >/dev/null 2>"$file.log"
        total=$(awk '/^(summary|totals):/ { print $2; exit }' "$file")
        echo "$path $route: $((total / requests)) instructions per request"
    done
done
