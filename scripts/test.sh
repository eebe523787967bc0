#!/usr/bin/env bash
# Runs every test: unit tests and the integration tests, which start the real
# server on 127.0.0.1:0 and talk to it over real sockets. Installs whatever
# the tests need on a fresh machine first (scripts/deps.sh); the Rust
# toolchain must already be present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is required (https://rustup.rs)" >&2
  exit 1
fi

source scripts/deps.sh

# One release build serves the tests and `cargo run --release` alike.
cargo test --release "$@"

# The JS tests (tests/js/): the OT client against the Rust side's golden
# cases and against the server built above.
node --test tests/js/
