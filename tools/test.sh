#!/usr/bin/env bash
# Every check CI runs: formatting, lints, the template linter, and all tests
# (unit and end-to-end; the end-to-end tests start their own isolated local
# stacks on free ports). Installs what it needs first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

step() { printf '\n== %s\n' "$*" >&2; }

step "bootstrap (pinned Python tools into .venv)"
tools/bootstrap.sh

step "chromium for the browser test (Debian's package)"
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""; [[ "$(id -u)" != 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cfn-lint template.yaml"
.venv/bin/cfn-lint template.yaml

step "sam validate --lint (no credentials needed)"
SAM_CLI_TELEMETRY=0 .venv-sam/bin/sam validate --lint --region us-east-1 --template template.yaml

step "cargo test (unit and end-to-end)"
cargo test --workspace --quiet

step "answer evals against the scripted model (evals/scenarios; prints the table)"
cargo run --quiet -p evals --bin picasso-evals

step "run-local, picasso-ops and cargo lambda reuse the test build (one feature set)"
tools/check-features.sh

step "every sample event through the real cargo lambda (watch and invoke; about 10 s)"
tools/cargo-lambda-check.sh

step "every bash block of README.md and docs/ as written, against tools/run-local.sh on free ports (about 60 s)"
tools/docs-walk.sh

step "every sample event through the real sam local invoke (its own dockerd; sam build of seven release functions: 10-13 min cold, then about 1 min)"
tools/sam-local-check.sh
