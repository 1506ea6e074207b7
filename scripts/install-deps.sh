#!/usr/bin/env bash
# Installs the system packages the tests, the fuzzers and CI need, on a Debian machine. Only
# packages not yet installed are installed, so running it again is cheap.
set -euo pipefail

# >>> apt packages >>>
APT_PACKAGES=()
# libfuzzer-sys compiles libFuzzer, which is C++.
command -v c++ >/dev/null 2>&1 || APT_PACKAGES+=(g++)
# The revocation tests (tests/revocation.rs) and bench start a real Redis server.
command -v redis-server >/dev/null 2>&1 || APT_PACKAGES+=(redis-server)
# tests/faults: node processes run with a skewed clock (libfaketime).
APT_PACKAGES+=(faketime)
# tests/browser.rs: headless Chromium driven through WebDriver (chromedriver).
APT_PACKAGES+=(chromium chromium-driver)
# tests/fleet.rs: an nginx round-robin load balancer in front of three demo instances.
APT_PACKAGES+=(nginx)
# scripts/load.sh (not part of the test suite): the HTTP load generator, and curl to log in.
APT_PACKAGES+=(wrk curl)
# <<< apt packages <<<

missing=()
for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed"; then
        missing+=("$package")
    fi
done
if ((${#missing[@]} == 0)); then
    echo "system packages: nothing to install"
    exit 0
fi
sudo=()
if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
