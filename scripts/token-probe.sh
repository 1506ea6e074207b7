#!/usr/bin/env bash
# The token encoding probe (examples/token_probe.rs, issue 27): sizes of options A, B and C on
# every corpus and generated state, instructions per call of each transform counted with
# callgrind (a count does not move with the load of a shared machine), and the seal/PrivateJar
# and open/floor ratios they would give, estimated from those counts. Prints markdown tables.
#
# Needs valgrind. Usage: scripts/token-probe.sh [CALLS] (default 200; one call before the
# count makes the contexts, and the count is divided by CALLS). The callgrind files stay in
# target/token-probe/.
set -euo pipefail
cd "$(dirname "$0")/.."

calls="${1:-200}"
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
out=target/token-probe
mkdir -p "$out"
cargo build --release --example token_probe >&2
probe=target/release/examples/token_probe
"$probe"
echo
for file in $("$probe" files); do
    for mode in seal open compress seal-a seal-b seal-c decompress open-a open-b open-c; do
        cg="$out/callgrind.$file.$mode"
        valgrind --tool=callgrind --callgrind-out-file="$cg" \
            --toggle-collect='*token_probe::counted*' \
            "$probe" count "$mode" "$file" "$calls" >/dev/null 2>"$cg.log"
        total=$(awk '/^(summary|totals):/ { print $2; exit }' "$cg")
        echo "$file $mode $((total / calls))"
    done
done | tee "$out/counts.txt" | "$probe" report
