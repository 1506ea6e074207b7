#!/usr/bin/env bash
# Checks the wire format against an independent decoder written from FORMAT.md alone:
#   1. tools/decode.py opens every valid vector of test_vectors/v1.json and v1-extra.json,
#      rejects every must-fail vector with its expected reason, and loads (or refuses, for the
#      stated reason) every key ring file vector;
#   2. if the CLI builds (`--features cli`), a fresh round trip: a new key ring, states sealed
#      by `sealed-session seal`, opened by tools/decode.py, compared with the input JSON; and
#      two cookies it must refuse.
# Exits non-zero on any failure. Python packages go into a venv under target/ (or pip --user).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
CORPUS_DIR=${CORPUS_DIR:-$ROOT/../shared/corpus}
PYTHON=${PYTHON:-python3}
# Cargo's target directory (CARGO_TARGET_DIR or the workspace's), as cargo reports it.
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps --manifest-path "$ROOT/Cargo.toml" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV=$TARGET_DIR/python-decoder-venv

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

step "Python environment"
if [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
    PY=$VENV/bin/python
    "$PY" -m pip install --quiet --disable-pip-version-check -r tools/requirements.txt \
        || fail "pip install -r tools/requirements.txt in $VENV"
else
    echo "venv unavailable; installing with pip --user"
    PY=$PYTHON
    "$PY" -m pip install --quiet --user --disable-pip-version-check -r tools/requirements.txt \
        || fail "pip install --user -r tools/requirements.txt"
fi
"$PY" -c 'import cryptography, zstandard; print("cryptography", cryptography.__version__, "zstandard", zstandard.__version__)'

step "Test vectors"
"$PY" tools/decode.py vectors test_vectors/v1.json test_vectors/v1-extra.json || fail "test vectors"

step "Round trip through the CLI"
cargo build --quiet --features cli --bin sealed-session || fail "cargo build --features cli"
BIN=$TARGET_DIR/debug/sealed-session
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$BIN" keys init --file "$TMP/ring.json" >/dev/null

# The states: a small one with a sensitive value, one large enough to need two chunks (random
# text barely compresses), and every corpus file.
echo '{"user": "ada", "csrf": "k9J2mQ", "roles": ["admin", "dev"], "n": -7, "x": 2.5, "ok": true, "none": null, "é": "ünïcode"}' \
    > "$TMP/small.json"
"$PY" -c 'import json, secrets; print(json.dumps({"blob": secrets.token_urlsafe(3600), "k": 1}))' \
    > "$TMP/two_chunks.json"
states=("$TMP/small.json" "$TMP/two_chunks.json")
for file in "$CORPUS_DIR"/*.json; do [ -e "$file" ] && states+=("$file"); done
[ "${#states[@]}" -gt 2 ] || echo "note: no corpus files in $CORPUS_DIR" >&2

failures=0

# The Cookie header a browser sends back for the Set-Cookie values in file $1: each
# `name=value` (removals left out), joined with "; ".
cookie_header() {
    grep -v 'Max-Age=0' "$1" | cut -d';' -f1 | paste -sd';' - | sed 's/;/; /g'
}

roundtrip() { # state file, then extra `seal`/`open` options
    local state=$1
    shift
    local label sensitive=()
    label="$(basename "$state") $*"
    if "$PY" -c 'import json, sys; sys.exit("csrf" not in json.load(open(sys.argv[1])))' "$state"; then
        sensitive=(--sensitive csrf)
    fi
    if ! "$BIN" seal --keys "$TMP/ring.json" --name session "$@" "${sensitive[@]}" \
        < "$state" > "$TMP/set-cookie"; then
        echo "FAIL $label: seal"; failures=$((failures + 1)); return
    fi
    if ! "$PY" tools/decode.py open --keys "$TMP/ring.json" --name session "$@" \
        --cookie "$(cookie_header "$TMP/set-cookie")" > "$TMP/opened.json"; then
        echo "FAIL $label: decode.py open"; failures=$((failures + 1)); return
    fi
    if "$PY" - "$state" "$TMP/opened.json" "${sensitive[@]}" <<'PYEOF'
import json, sys
state, opened = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
want_sensitive = ["csrf"] if "--sensitive" in sys.argv else []
ok = opened["values"] == state and opened["sensitive"] == want_sensitive
print(f"{'ok  ' if ok else 'FAIL'} {len(state)} values, {opened['chunks']} chunk(s), "
      f"compressed={opened['compressed']}, sensitive={opened['sensitive']}:", end=" ")
sys.exit(0 if ok else 1)
PYEOF
    then echo "$label"; else echo "$label: state differs"; failures=$((failures + 1)); fi
}

refused() { # label, --name value, Cookie header, expected reason
    if "$PY" tools/decode.py open --keys "$TMP/ring.json" --name "$2" --cookie "$3" \
        > /dev/null 2> "$TMP/err"; then
        echo "FAIL $1: opened"; failures=$((failures + 1))
    elif grep -q "^rejected: $4" "$TMP/err"; then
        echo "ok   $1: $(cat "$TMP/err")"
    else
        echo "FAIL $1: $(cat "$TMP/err"), expected $4"; failures=$((failures + 1))
    fi
}

for state in "${states[@]}"; do
    roundtrip "$state"
done
roundtrip "$TMP/small.json" --signed
roundtrip "$TMP/small.json" --no-host-prefix

# What the decoder must refuse: the cookie under another name (bound into the AAD), and with
# one character of its ciphertext changed.
"$BIN" seal --keys "$TMP/ring.json" --name session < "$TMP/small.json" > "$TMP/set-cookie"
value=$(cookie_header "$TMP/set-cookie")
value=${value#*=}
flip=A; [ "${value:40:1}" = A ] && flip=B
refused "moved to another name" other "__Host-other=$value" forged
refused "one character changed" session "__Host-session=${value:0:40}$flip${value:41}" forged

[ "$failures" -eq 0 ] || fail "$failures round trip(s)"
echo "all round trips ok"
