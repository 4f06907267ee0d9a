#!/usr/bin/env bash
# Runs the whole system on this machine: moto on 127.0.0.1:4566, every
# resource of template.yaml, the demo tenant, and the local host on
# 127.0.0.1:3000. Ctrl-C stops everything. Extra arguments go to local-stack
# (--moto-port N, --host-port N, --quiet).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/bootstrap.sh
# Fresh after tools/test.sh (one feature set for the workspace: tools/workspace-hack).
# On a fresh clone this compiles every dependency first: cargo shows its progress.
echo "cargo build -p local-stack (nothing to compile after tools/test.sh; a first build compiles every dependency, about 10 minutes on 2 cores)" >&2
cargo build -p local-stack
target_dir="$(tools/target-dir.sh)"   # CARGO_TARGET_DIR or a configured one may move it
exec "$target_dir/debug/local-stack" "$@"
