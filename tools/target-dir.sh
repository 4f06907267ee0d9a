#!/usr/bin/env bash
# Prints cargo's target directory for this workspace (CARGO_TARGET_DIR or a
# configured one may move it out of target/), for scripts that run a binary
# cargo built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
