#!/usr/bin/env bash
# Runs every `bash` block of README.md and docs/*.md as written, in reading
# order, against a stack that tools/run-local.sh starts on free ports (the
# blocks' default ports, profile folder and `validate.sh --local` are pointed
# at it), so a documented command that stops working fails the test command.
# Blocks tagged `shell` (AWS, or starting the stack itself) are not run.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$SECONDS

read -r moto host bedrock < <(python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
log="$(mktemp)" script="$(mktemp)"
tools/run-local.sh --moto-port "$moto" --host-port "$host" --bedrock-port "$bedrock" --quiet >"$log" 2>&1 &
stack=$!
stop() {
  kill "$stack" 2>/dev/null && wait "$stack" 2>/dev/null
  rm -rf "$root/.local/stack-$moto" "$log" "$script"
}
trap stop EXIT

until grep -q "local stack is up" "$log"; do
  if ! kill -0 "$stack" 2>/dev/null || ((SECONDS - started > 900)); then
    echo "docs-walk: the local stack did not start:" >&2; tail -30 "$log" >&2; exit 1
  fi
  sleep 1
done

python3 tools/docs-walk/blocks.py --root "$root" --moto-port "$moto" --host-port "$host" \
  --bedrock-port "$bedrock" >"$script"
mkdir -p .local && walk_log=".local/docs-walk.log"   # what every block printed, kept to read
if ! bash "$script" >"$walk_log" 2>&1; then
  tail -60 "$walk_log" >&2
  echo "docs-walk: FAIL (the block named last above; the stack's log follows)" >&2
  tail -20 "$log" >&2
  exit 1
fi
tail -1 "$walk_log" >&2
echo "docs-walk: PASS in $((SECONDS - started)) s" >&2
