#!/usr/bin/env bash
# The test command the README gives. On a fresh Debian machine with Rust installed it installs
# what the tests need, then runs every unit, integration and doc test with all features, and
# checks that test_vectors/ still matches what the seeded generator produces.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "--- system packages"
bash scripts/install-deps.sh

# --nocapture: the limit, browser and fleet tests print what they measured (peak memory,
# cookie sizes, journeys and requests, sessions lost and rejected); CI shows it.
echo "--- cargo test --all-features -- --nocapture"
cargo test --all-features -- --nocapture

echo "--- test vectors: cargo run --example test_vectors -- --check"
cargo run --all-features --example test_vectors -- --check

echo "--- independent Python decoder: test vectors and fresh CLI output"
bash tools/check_python_decoder.sh
