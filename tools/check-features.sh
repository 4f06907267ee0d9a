#!/usr/bin/env bash
# Fails when a command the docs give would recompile dependencies that
# `cargo test --workspace` already built: the commands' feature sets must be
# the workspace's (tools/workspace-hack). Run after the test build, so every
# build below is fresh and this takes seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
python3 - <<'PY'
import json, subprocess, sys

commands = [["build", "-p", "local-stack"], ["build", "-p", "ops", "--bin", "picasso-ops"]]
commands += [["build", "-p", f] for f in
             ["chat-stream", "form-intake", "outbox-sweeper", "email-sender", "sms-sender", "handler-dispatch"]]
failed = False
for command in [["test", "--workspace", "--no-run"]] + commands:
    out = subprocess.run(["cargo", *command, "--message-format=json"], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        message = json.loads(line)
        # Workspace members may compile (a binary the tests do not build); a dependency may not.
        member = message.get("package_id", "").startswith("path+file://")
        if message.get("reason") == "compiler-artifact" and not message["fresh"] and command[0] == "build" \
                and not member:
            failed = True
            print(f"cargo {' '.join(command)} recompiled {message['package_id']} with features "
                  f"{message['features']} after the test build: add what differs to "
                  "tools/workspace-hack/Cargo.toml", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
echo "every documented build reuses the test build's dependencies" >&2
