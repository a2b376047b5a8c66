#!/usr/bin/env bash
# The whole test suite, on a fresh machine with only the Rust toolchain:
# installs what the tests need when it is missing (redis-server from
# Debian's packages, and Chromium with its WebDriver; Node.js 22 from the
# npm registry when the machine's node is older), then runs every test of the workspace with every feature,
# including the tests a plain `cargo test` lists as ignored because they
# need those services. A test that needs a service it cannot find fails.
#
# Usage: scripts/test-all.sh [extra arguments for the test binaries]
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_MIN_MAJOR=22
# The exact Node.js brought when the machine's is older (a registry package
# that ships the binary; no install script runs).
NODE_VERSION=22.23.5
TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"

say() { echo "test-all: $*" >&2; }

# Root, or sudo for what needs root (installing, stopping a packaged service).
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi

apt_updated=0
apt_install() {
  if [ -n "$sudo" ]; then
    command -v sudo >/dev/null 2>&1 || { say "need root or sudo to install $*"; exit 1; }
  fi
  command -v apt-get >/dev/null 2>&1 || { say "no apt-get: install $* yourself"; exit 1; }
  if [ "$apt_updated" -eq 0 ]; then
    $sudo apt-get update -qq
    apt_updated=1
  fi
  say "installing $* (Debian packages)"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

if ! command -v redis-server >/dev/null 2>&1; then
  apt_install redis-server
fi
# Failover tests: a primary, replicas and three sentinels.
if ! command -v redis-sentinel >/dev/null 2>&1; then
  apt_install redis-sentinel
fi
# The reverse proxy in front of the client-address tests.
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  apt_install nginx-light
  # The package starts a system nginx on port 80: the tests start their own.
  $sudo systemctl stop nginx >/dev/null 2>&1 || $sudo pkill -x nginx || true
fi
# The deployment kit's systemd unit is checked with systemd-analyze.
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt_install systemd
fi
# The deployment kit's Caddyfile is tested with Debian's caddy.
if ! command -v caddy >/dev/null 2>&1; then
  apt_install caddy
  # The package starts a system caddy on port 80: the tests start their own.
  $sudo systemctl stop caddy >/dev/null 2>&1 || $sudo pkill -x caddy || true
fi
say "$(redis-server --version)"

# The authorization server's pages are tested in a real browser.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_install chromium chromium-driver
fi
say "$(chromium --version 2>/dev/null || echo chromium)"

# The official Python SDK runs in a virtual environment the test makes.
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3 python3-venv
fi
say "$(python3 --version)"

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  apt_install nodejs npm
fi
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt "$NODE_MIN_MAJOR" ]; then
  case "$(uname -m)" in
    x86_64) arch=x64 ;;
    aarch64 | arm64) arch=arm64 ;;
    *) say "no Node.js package for $(uname -m)"; exit 1 ;;
  esac
  prefix="$TARGET_DIR/tools/node-$NODE_VERSION"
  bin="$prefix/node_modules/node-linux-$arch/bin"
  if [ ! -x "$bin/node" ]; then
    say "node $(node --version) is older than $NODE_MIN_MAJOR: bringing node $NODE_VERSION"
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --no-save --ignore-scripts \
      "node-linux-$arch@$NODE_VERSION" >/dev/null
  fi
  export PATH="$bin:$PATH"
fi
say "node $(node --version), npm $(npm --version)"

log="$TARGET_DIR/test-all.log"
mkdir -p "$TARGET_DIR"
set +e
# --no-fail-fast: one failing test binary does not hide the others' results.
cargo test --workspace --all-features --locked --no-fail-fast -- --include-ignored "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line over every test binary and doctest run.
awk '/^test result:/ {
       for (i = 1; i <= NF; i++) {
         if ($(i+1) ~ /^passed;?$/) p += $i
         if ($(i+1) ~ /^failed;?$/) f += $i
         if ($(i+1) ~ /^ignored;?$/) g += $i
       }
     }
     END { printf "total: %d passed, %d failed, %d skipped\n", p, f, g; exit (g > 0) }' "$log" ||
  { say "some tests were ignored: every test must run here"; status=1; }
exit "$status"
