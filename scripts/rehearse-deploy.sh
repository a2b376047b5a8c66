#!/usr/bin/env bash
# The deployment rehearsal: the shipped nginx site terminating TLS (a local
# CA) in front of two spotify-mcp processes in no-account mode sharing one
# Spotify double process and one Redis over TLS; clients signed in over
# https under load through a key rotation, a SIGKILL of one process and a
# rolling restart with SIGTERM; 200 users through the proxy each with their
# own budget; readiness and metrics scraped. What it checks is listed in
# examples/spotify-mcp/tests/rehearsal.rs.
#
# Needs redis-server and nginx: scripts/test-all.sh installs them (.ci/run
# runs it first). Prints one closing line, "rehearsal: N passed, N failed",
# and exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
# The Node.js scripts/test-all.sh brought when the machine's was too old.
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
for bin in "$target_dir"/tools/node-*/node_modules/node-linux-*/bin; do
  if [ -x "$bin/node" ]; then
    export PATH="$bin:$PATH"
  fi
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --locked -p spotify-mcp --all-features --test rehearsal -- \
  --include-ignored --exact the_deployment_rehearsal --nocapture 2>&1 | tee "$log" >&2 || status=$?
line=$(grep -E '^rehearsal: [0-9]+ passed, [0-9]+ failed$' "$log" | tail -1 || true)
if [ -z "$line" ]; then
  echo "rehearsal: 0 passed, 1 failed (it did not finish; see above)"
  exit 1
fi
echo "$line"
case "$line" in
  *", 0 failed") exit "$status" ;;
  *) exit 1 ;;
esac
