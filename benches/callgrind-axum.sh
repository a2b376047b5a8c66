#!/usr/bin/env bash
# Instructions per authenticated tools/call over loopback (client and
# server, user space), bare rmcp vs the full mcp-auth-axum stack, counted by
# valgrind's callgrind: the same figure on every run, whatever the machine's
# load (the throughput bench, benches/benches/axum.rs, is the time-based one).
# Each mode runs at two request counts; the difference over the difference
# in requests cancels start-up (key generation, runtime, connections).
#
#   benches/callgrind-axum.sh            # needs valgrind (apt-get install valgrind)
#
# Takes a few minutes. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
cargo build --release --locked -q -p mcp-auth-benches --example axum_instructions
bin=target/release/examples/axum_instructions
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
small=1600
large=4800

count() { # mode requests -> total instructions, and the software SHA-256's
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" "$1" "$2" 2>"$out/$1.$2.log" >/dev/null
  local total sha
  total=$(grep -o 'Collected : [0-9]*' "$out/$1.$2.log" | grep -o '[0-9]*$')
  sha=$(callgrind_annotate --threshold=100 "$out/$1.$2" 2>/dev/null |
    awk '/sha2::sha256::soft/ { gsub(",", "", $1); s += $1 } END { print s + 0 }')
  echo "$total $sha"
}

declare -A per sha_per
for mode in bare floor full; do
  read -r t1 s1 < <(count "$mode" "$small")
  read -r t2 s2 < <(count "$mode" "$large")
  per[$mode]=$(( (t2 - t1) / (large - small) ))
  sha_per[$mode]=$(( (s2 - s1) / (large - small) ))
done
bare=${per[bare]}
full=${per[full]}
floor=${per[floor]}
sha=$(( ${sha_per[full]} - ${sha_per[bare]} ))
floor_sha=$(( ${sha_per[floor]} - ${sha_per[bare]} ))
echo "figure: instructions per tools/call (client + server, user space): bare $bare, floor $floor, full stack $full"
awk -v b="$bare" -v f="$full" -v s="$sha" 'BEGIN {
  printf "ratio: full / bare instructions = %.3f; CPU-bound throughput bare/full = %.3f (the stack costs %.1f%%)\n", f / b, b / f, (1 - b / f) * 100
  printf "note: valgrind hides SHA-NI, so the token-cache key is hashed in software here: %d instructions per request\n", s
  printf "ratio: without that software SHA-256: full / bare = %.3f; throughput bare/full = %.3f (costs %.1f%%); natively the hash takes about 0.3 us (sha mode of the example)\n", (f - s) / b, b / (f - s), (1 - b / (f - s)) * 100
}'
# The floor: the bare server behind the least work the guarantees need
# (token cache lookup, body peek, security headers; axum_stack::floor_app).
awk -v b="$bare" -v f="$full" -v l="$floor" -v s="$sha" -v ls="$floor_sha" 'BEGIN {
  printf "ratio: the floor without its software SHA-256 (%d): floor / bare = %.3f (the guarantees cost %.1f%%); full / floor = %.3f (the stack'"'"'s own work beyond them: %d instructions, %.1f%%)\n", ls, (l - ls) / b, (1 - b / (l - ls)) * 100, (f - s) / (l - ls), (f - s) - (l - ls), (1 - (l - ls) / (f - s)) * 100
}'
