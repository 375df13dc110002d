#!/usr/bin/env bash
# The README's test command: installs what is missing (PostgreSQL server binaries, pgbench, a
# Rust toolchain check), then runs every test. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'test.sh: %s\n' "$*"; }

as_root=false
[ "$(id -u)" = 0 ] && as_root=true
apt_updated=false
apt_install() {
  if ! $as_root; then
    say "missing: $*; install it with: sudo apt-get install $*"
    exit 1
  fi
  if ! $apt_updated; then
    say "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=true
  fi
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

have_server() {
  command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
}

if ! have_server; then
  apt_install postgresql postgresql-contrib
fi
have_server || { say "PostgreSQL server binaries still not found after install"; exit 1; }

if ! command -v pgbench >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/pgbench" >/dev/null; then
  apt_install postgresql-contrib
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "cargo not found: install Rust with rustup (https://rustup.rs), then rerun scripts/test.sh"
  exit 1
fi

say "PostgreSQL: $( (command -v postgres >/dev/null && postgres --version) || ls -d /usr/lib/postgresql/*/bin | tail -n 1)"
say "running cargo test"
exec cargo test --all-targets "$@"
