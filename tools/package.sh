#!/usr/bin/env bash
# Builds every function's Lambda deployment package (arm64, release profile:
# LTO, one codegen unit, stripped, panic=abort) with cargo lambda and prints
# each binary's and zip's size. The zips land in target/lambda/<function>/bootstrap.zip.
# `--x86-64` builds for x86_64 instead (matching Architectures must then change in template.yaml).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

functions=(chat-stream form-intake outbox-sweeper email-sender sms-sender handler-dispatch funnel-projector)
arch=(--arm64); target=aarch64-unknown-linux-gnu
if [[ "${1:-}" == "--x86-64" ]]; then arch=(--x86-64); target=x86_64-unknown-linux-gnu; fi

tools/bootstrap.sh                          # cargo-lambda (and zig) into .venv
export PATH="$root/.venv/bin:$PATH"
if ! rustup target add "$target" >/dev/null 2>&1 && ! rustup target list --installed | grep -qx "$target"; then
  echo "package.sh: the Rust standard library for $target is not installed, and rustup could not fetch it." >&2
  echo "  Install it where you have the network: rustup target add $target" >&2
  [[ "$target" == aarch64-unknown-linux-gnu ]] && echo "  Or build for this machine: tools/package.sh --x86-64" >&2
  exit 1
fi

packages=(); for f in "${functions[@]}"; do packages+=(-p "$f"); done
start=$(date +%s)
cargo lambda build --release "${arch[@]}" --output-format zip "${packages[@]}"
echo "built ${#functions[@]} packages for $target in $(( $(date +%s) - start )) s"

printf '%-18s %10s %10s\n' function binary zip
for f in "${functions[@]}"; do
  zip="target/lambda/$f/bootstrap.zip"
  # `unzip -Zt`: "1 file, <uncompressed> bytes uncompressed, <compressed> bytes compressed: ..."
  unzip -Zt "$zip" | awk -v f="$f" -v z="$(stat -c %s "$zip")" \
    '{ printf "%-18s %7.1f MB %7.1f MB\n", f, $3 / 1048576, z / 1048576 }'
done
