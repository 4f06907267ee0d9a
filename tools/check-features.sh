#!/usr/bin/env bash
# Fails when a command the docs give would recompile dependencies that
# `cargo test --workspace` already built: the commands' feature sets must be
# the workspace's (tools/workspace-hack). Run after the test build, so every
# build below is fresh and this takes seconds.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
# The workspace-hack's section is what cargo-hakari generates today
# (cargo-hakari, pinned here, is built into .tools once: about 1.5 min).
hakari_version=0.9.39
export PATH="$root/.tools/bin:$PATH"
if [[ "$(cargo-hakari hakari --version 2>/dev/null)" != "cargo-hakari $hakari_version" ]]; then
  echo "check-features: installing cargo-hakari $hakari_version into .tools" >&2
  cargo install --quiet --locked --root "$root/.tools" --version "$hakari_version" cargo-hakari
fi
if ! cargo hakari generate --diff --quiet; then
  echo "tools/workspace-hack is stale: run .tools/bin/cargo-hakari hakari generate" >&2
  exit 1
fi
python3 - <<'PY'
import json, subprocess, sys

commands = [["build", "-p", "local-stack"], ["build", "-p", "ops", "--bin", "picasso-ops"]]
commands += [["build", "-p", f] for f in
             ["chat-stream", "form-intake", "outbox-sweeper", "email-sender", "sms-sender", "handler-dispatch", "funnel-projector"]]
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

# The same from the resolver itself, whatever the target directory already
# holds: each documented build resolves every dependency with the features
# the test build gives it (a variant built earlier would hide a difference above).
def features(args):
    tree = subprocess.run(["cargo", "tree", "-e", "normal", "--prefix", "none", "-f", "{p}|{f}", *args],
                          capture_output=True, text=True, check=True).stdout
    found = {}
    for line in tree.splitlines():
        package, _, enabled = line.replace("(*)", "").partition("|")
        parts = package.split()
        if len(parts) > 2 and parts[2].startswith("(/"):
            continue  # a workspace member
        found.setdefault(" ".join(parts[:2]), set()).update(f.strip() for f in enabled.split(",") if f.strip())
    return found
workspace = features(["--workspace"])
for member in ["local-stack", "ops", "evals", "chat-stream", "form-intake", "outbox-sweeper", "email-sender", "sms-sender",
               "handler-dispatch", "funnel-projector"]:
    for package, enabled in features(["-p", member]).items():
        if package in workspace and workspace[package] != enabled:
            failed = True
            print(f"cargo build -p {member} would build {package} with features {sorted(enabled)}, the test build "
                  f"with {sorted(workspace[package])}: add the difference to tools/workspace-hack/Cargo.toml",
                  file=sys.stderr)

# Each function compiles only the AWS clients its role grants: the SDK crates in
# its own dependency tree (features resolved as `cargo build -p <function>`
# resolves them) name exactly the services of its functions/<name>/iam-actions.txt.
SERVICE = {"s3": "s3", "dynamodb": "dynamodb", "eventbridge": "events", "sqs": "sqs", "sesv2": "ses",
           "sns": "sns", "lambda": "lambda", "bedrockruntime": "bedrock", "bedrockagentruntime": "bedrock"}
for function in ["chat-stream", "form-intake", "outbox-sweeper", "email-sender", "sms-sender", "handler-dispatch",
                 "funnel-projector"]:
    tree = subprocess.run(["cargo", "tree", "-p", function, "-e", "normal", "--prefix", "none", "-f", "{p}"],
                          capture_output=True, text=True, check=True).stdout
    clients = {line.split()[0].removeprefix("aws-sdk-") for line in tree.splitlines() if line.startswith("aws-sdk-")}
    compiled = {SERVICE.get(client, f"aws-sdk-{client}") for client in clients}
    with open(f"functions/{function}/iam-actions.txt") as listed:
        granted = {line.split(":")[0] for line in listed if line.strip() and not line.startswith("#")}
    if compiled != granted:
        failed = True
        print(f"{function} compiles the clients of {sorted(compiled)} but its role grants {sorted(granted)} "
              f"(functions/{function}/Cargo.toml: the aws-adapters features; iam-actions.txt)", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
echo "every documented build reuses the test build's dependencies, and each function compiles only the clients its role grants" >&2
