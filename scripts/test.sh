#!/usr/bin/env bash
# The README's test command: makes sure the PostgreSQL tools the integration tests need are
# installed (installing them with apt when run as root, e.g. on CI), then runs the whole test
# suite and builds the API docs (warnings are errors). Extra arguments go to `cargo test`, e.g.
# `scripts/test.sh -- --nocapture`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { printf 'test.sh: %s\n' "$*"; }

has_server_binaries() { [ -x "$1/initdb" ] && [ -x "$1/pg_ctl" ] && [ -x "$1/postgres" ]; }

# Same search as pgstorm::sandbox::find_bin_dir: PATH first, then Debian's versioned dirs.
server_bin_dir() {
  local initdb dir
  if initdb=$(command -v initdb); then
    for dir in "$(dirname "$(readlink -f "$initdb")")" "$(dirname "$initdb")"; do
      if has_server_binaries "$dir"; then echo "$dir"; return 0; fi
    done
  fi
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if has_server_binaries "$dir"; then echo "$dir"; return 0; fi
  done
  return 1
}

# As root: apt-get install the packages. Otherwise: print the command to run, and stop.
install_or_ask() {
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    say "installing $* with apt-get"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "$@"
  else
    echo "sudo apt-get install $*"
    exit 1
  fi
}

say "looking for the PostgreSQL server binaries (initdb, pg_ctl, postgres)"
if ! bin_dir=$(server_bin_dir); then
  install_or_ask postgresql postgresql-contrib
  bin_dir=$(server_bin_dir) || { say "still no initdb/pg_ctl/postgres after installing"; exit 1; }
fi
# Put the server's bin dir first so the tests and pgbench use one installation.
export PATH="$bin_dir:$PATH"
say "PostgreSQL server: $bin_dir ($("$bin_dir/postgres" --version))"

if ! command -v pgbench >/dev/null; then
  install_or_ask postgresql-client postgresql-contrib
  command -v pgbench >/dev/null || { say "still no pgbench after installing"; exit 1; }
fi
say "pgbench: $(command -v pgbench)"

# The bench script's summary (tests/bench_script.rs) is python3, as the script itself is.
if ! command -v python3 >/dev/null; then
  install_or_ask python3
  command -v python3 >/dev/null || { say "still no python3 after installing"; exit 1; }
fi
say "python3: $(command -v python3)"

# The report.html test loads the page in headless Chromium and checks the screenshot.
if ! command -v chromium >/dev/null; then
  install_or_ask chromium
  command -v chromium >/dev/null || { say "still no chromium after installing"; exit 1; }
fi
say "chromium: $(command -v chromium)"

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  say "cargo not found; install Rust with rustup (https://rustup.rs):"
  echo "curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh"
  exit 1
fi
say "running cargo test --all-targets $*"
cargo test --all-targets "$@"

# The API docs build without a warning, private items' docs included: a doc link to a name that
# is gone, or from a public item's docs to a private item, fails the run here.
say "running cargo doc --no-deps --document-private-items, warnings as errors"
RUSTDOCFLAGS="${RUSTDOCFLAGS:-} -D warnings" cargo doc --no-deps --document-private-items -q
