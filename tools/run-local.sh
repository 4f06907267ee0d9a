#!/usr/bin/env bash
# Runs the whole system on this machine: moto on 127.0.0.1:4566, every
# resource of template.yaml, the demo tenant, and the local host on
# 127.0.0.1:3000. Ctrl-C stops everything. Extra arguments go to local-stack
# (--moto-port N, --host-port N, --quiet).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
tools/bootstrap.sh
cargo build --quiet -p local-stack
exec target/debug/local-stack "$@"
