#!/usr/bin/env bash
# Instructions per refresh grant over loopback (client and server, user
# space), the authorization server on its memory store vs a canned /token
# handler answering with a token response of the same size (the floor: the
# HTTP client, hyper, axum and the loopback), counted by valgrind's
# callgrind: the same figure on every run, whatever the machine's load (the
# throughput bench, benches/benches/oauth_server.rs, is the time-based one).
# Each mode runs at two request counts; the difference over the difference
# in requests cancels start-up (key generation, sign-ins, connections).
#
#   benches/callgrind-token.sh            # needs valgrind
#   TOP=25 benches/callgrind-token.sh     # and the 25 functions that grew most
#
# Takes a few minutes. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }
cargo build --release --locked -q -p mcp-auth-benches --example token_instructions
bin=target/release/examples/token_instructions
out=${OUT:-$(mktemp -d)}
[ -n "${OUT:-}" ] || trap 'rm -rf "$out"' EXIT
small=800
large=2400

count() { # mode requests -> total instructions
  valgrind --tool=callgrind --callgrind-out-file="$out/$1.$2" "$bin" "$1" "$2" 2>"$out/$1.$2.log" >/dev/null
  grep -o 'Collected : [0-9]*' "$out/$1.$2.log" | grep -o '[0-9]*$'
}

declare -A per
for mode in canned refresh; do
  t1=$(count "$mode" "$small")
  t2=$(count "$mode" "$large")
  per[$mode]=$(( (t2 - t1) / (large - small) ))
done
canned=${per[canned]}
refresh=${per[refresh]}
echo "figure: instructions per refresh grant (client + server, user space): canned answer $canned, authorization server $refresh"
awk -v c="$canned" -v r="$refresh" 'BEGIN {
  printf "ratio: server / canned instructions = %.2f; the server'"'"'s own work per refresh = %d instructions (%.0f%% of the total)\n", r / c, r - c, (1 - c / r) * 100
}'
if [ -n "${TOP:-}" ]; then
  # Per function (self cost), large run minus small run, per refresh.
  for n in "$small" "$large"; do
    callgrind_annotate --threshold=100 "$out/refresh.$n" 2>/dev/null |
      awk '/^ *[0-9,]+ / { v=$1; gsub(",", "", v); $1=""; sub(/^ *\( *[0-9.]+%\) */, ""); print v "\t" $0 }' >"$out/fn.$n"
  done
  awk -F'\t' -v d="$((large - small))" 'NR==FNR { a[$2]=$1; next } { printf "%10d  %s\n", ($1 - a[$2]) / d, $2 }' \
    "$out/fn.$small" "$out/fn.$large" | sort -rn | head -"$TOP"
fi
