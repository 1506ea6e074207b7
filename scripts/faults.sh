#!/usr/bin/env bash
# The revocation fault suite (tests/faults) at full sizes: per scenario and policy, three node
# processes on real redis-servers, 1,000 never-revoked sessions, 10,000 revoked before the fault
# (a quarter by "log out everywhere"), 1,000 revoked during it, the default staleness bound
# (5 s); the cap scenarios hold 5,000 entries per node while 8,000 users log out. CI runs the
# same scenarios at reduced sizes (`cargo test --all-features --test faults`). Arguments select
# scenarios by name. The numbers in docs/revocation.md, "Faults", come from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
SEALED_SESSION_FAULTS_FULL=1 cargo test --all-features --test faults -- "$@"
