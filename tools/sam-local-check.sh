#!/usr/bin/env bash
# Every sample event in events/ through the real `sam local invoke`, as
# events/README.md tells a user to run it, each answer checked against what
# events/README.md says happens. Needs no internet and no Docker of the machine
# (docs/sam-local-invoke.md explains each step):
#
#   1. installs Debian's docker.io, busybox-static and socat (and iproute2) if
#      missing (apt-get; sudo when not root);
#   2. `sam build --parameter-overrides Architecture=<this machine's>` of all seven
#      functions into .local/sam-local/build (release profile: 10-13 minutes
#      on 2 cores the first time, seconds when target/ is warm);
#   3. starts a Docker daemon of its own (vfs storage, no iptables, its state in
#      a temporary directory, its own bridge interface), reached through
#      DOCKER_HOST; never a system daemon;
#   4. makes the invoke image: the public Lambda base images cannot be pulled,
#      so a root filesystem of busybox (the sh, mv and chmod SAM's image build
#      runs) and the shared libraries the built bootstraps load (ldd), imported
#      as picasso-local-invoke:latest; SAM adds its runtime interface emulator on top;
#   5. starts a local stack of its own (moto, the Bedrock stand-in, the demo
#      tenant) on free ports of 4700-4799, bound to 127.0.0.1;
#   6. invokes each function with every event of its folder, as its own IAM
#      principal (--profile picasso-<function>), with the environment its template
#      gives as the local stack resolved it (--env-vars).
#
# Two things `sam local invoke` does not do, and what this does instead:
#   - It passes a function only the variables its template declares (and
#     AWS_* region and credentials): --env-vars cannot add AWS_ENDPOINT_URL, so
#     the invoke image carries the emulator's endpoints (ENV).
#   - Its function containers start on Docker's default bridge, and
#     `--docker-network host` does not change that (SAM CLI 1.170 skips
#     connecting a container to `host`), so they cannot reach 127.0.0.1 of this
#     machine. A socat relay on the bridge's own address (answering only the
#     bridge's subnet) forwards to the stack's 127.0.0.1 ports.
#
#   tools/sam-local-check.sh [--moto-port N] [--host-port N] [--bedrock-port N]
#
# Prints PASS/FAIL per check, the build and invoke times, and a final PASS line.
# Exit status 0 when every check passed. Everything it started (the stack, the
# relays, the Docker daemon with its containers and bridge) is stopped on exit
# and its temporary directory removed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

moto="" host="" bedrock=""
while (($#)); do
  case "$1" in
    --moto-port) moto="${2:?}"; shift ;;
    --host-port) host="${2:?}"; shift ;;
    --bedrock-port) bedrock="${2:?}"; shift ;;
    *) echo "sam-local-check: unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done

started=$(date +%s)
say() { printf 'sam-local-check: %s\n' "$*" >&2; }
fail() { say "FAIL: $*"; exit 1; }

sudo=""; [[ "$(id -u)" != 0 ]] && sudo="sudo"
case "$(uname -m)" in
  x86_64) arch=x86_64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) fail "no Lambda architecture for this machine ($(uname -m))" ;;
esac

# Short, since dockerd's and containerd's sockets live under it (a socket path
# has at most 107 bytes), and outside the repository: `sam build`'s cache hashes
# every file under CodeUri (the repository), and a socket or device file fails it.
work="$(mktemp -d /tmp/sam-local.XXXXXX)"
bridge="sam-${work##*.}"          # this run's bridge interface (at most 15 characters)
build_dir="$root/.local/sam-local/build"
image=picasso-local-invoke:latest
stack_pid="" dockerd_pid="" relay_pids=() bridge_made=""

alive() { [[ -n "$1" && -d "/proc/$1" ]]; }
cleanup() {
  local status=$?
  set +e
  if alive "$stack_pid"; then
    kill -- "-$stack_pid" 2>/dev/null || kill "$stack_pid" 2>/dev/null
    wait "$stack_pid" 2>/dev/null
  fi
  for pid in "${relay_pids[@]}"; do kill "$pid" 2>/dev/null; done
  if alive "$dockerd_pid"; then
    $sudo kill "$dockerd_pid"
    for _ in $(seq 1 60); do alive "$dockerd_pid" || break; sleep 0.5; done
    if alive "$dockerd_pid"; then
      say "dockerd ($dockerd_pid) did not stop in 30 s; killing it"
      $sudo kill -9 "$dockerd_pid"
    fi
  fi
  # dockerd leaves its network namespace file mounted under its exec root.
  awk -v dir="$work/" 'index($2, dir) == 1 { print $2 }' /proc/self/mounts | sort -r |
    while read -r mount; do $sudo umount "$mount"; done
  [[ -n "$bridge_made" ]] && $sudo ip link delete "$bridge"
  $sudo rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free port of 4700-4799 for each server not given one.
read -r free1 free2 free3 < <(python3 - "$moto" "$host" "$bedrock" <<'PY'
import socket, sys
taken = {int(p) for p in sys.argv[1:] if p}
chosen = []
for port in range(4700, 4800):
    if port in taken:
        continue
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    chosen.append(port)
    taken.add(port)
    if len(chosen) == 3:
        break
print(*chosen)
PY
) || true
moto="${moto:-$free1}" host="${host:-$free2}" bedrock="${bedrock:-$free3}"
[[ -n "$moto" && -n "$host" && -n "$bedrock" ]] || fail "no three free ports in 4700-4799"

# --- 1. tools ------------------------------------------------------------------
tools/bootstrap.sh >/dev/null
export PATH="$root/.venv/bin:$PATH"   # cargo-lambda (sam build runs it) and the AWS CLI
export SAM_CLI_TELEMETRY=0 SAM_CLI_BETA_RUST_CARGO_LAMBDA=1
sam="$root/.venv-sam/bin/sam"
missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
command -v socat >/dev/null 2>&1 || missing+=(socat)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
if ((${#missing[@]})); then
  say "installing Debian's ${missing[*]} (apt-get)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# The client of the daemon below: Debian's, of the daemon's own version.
docker=/usr/bin/docker; [[ -x "$docker" ]] || docker="$(command -v docker)" ||
  fail "no docker client (Debian's docker.io installs /usr/bin/docker)"

# --- 2. sam build ----------------------------------------------------------------
say "sam build of the seven functions for $arch into .local/sam-local/build (release, LTO: 10-13 minutes on 2 cores the first time)"
build_started=$(date +%s)
mkdir -p "$root/.local/sam-local"
# --no-cached: cargo keeps its own cache in target/; SAM's would hash every
# file of the repository (CodeUri is `.`) on each build.
if ! "$sam" build --no-cached --parameter-overrides "Architecture=$arch" --build-dir "$build_dir" \
    --region us-east-1 > "$root/.local/sam-local/sam-build.log" 2>&1; then
  tail -40 "$root/.local/sam-local/sam-build.log" >&2
  fail "sam build failed (its whole log: .local/sam-local/sam-build.log)"
fi
build_seconds=$(( $(date +%s) - build_started ))
mapfile -t bootstraps < <(find "$build_dir" -name bootstrap -type f)
((${#bootstraps[@]} == 7)) || fail "expected seven bootstraps in $build_dir, found ${#bootstraps[@]}"
say "sam build: ${build_seconds} s"

# --- 3. the Docker daemon, on a bridge of its own --------------------------------
# A /24 that no route of this machine overlaps.
read -r gateway subnet < <(ip -4 route show | python3 -c '
import ipaddress, sys
used = [ipaddress.ip_network(line.split()[0], strict=False) for line in sys.stdin
        if line.split() and line.split()[0] != "default"]
for third in range(200, 255):
    net = ipaddress.ip_network(f"172.31.{third}.0/24")
    if not any(net.overlaps(u) for u in used):
        print(f"{net.network_address + 1} {net}")
        break
') || true
[[ -n "${gateway:-}" ]] || fail "no free /24 in 172.31.200-254.0 for the Docker bridge"
$sudo ip link add name "$bridge" type bridge
bridge_made=1
$sudo ip addr add "$gateway/24" dev "$bridge"
$sudo ip link set "$bridge" up

mkdir -p "$work/data" "$work/exec"
export DOCKER_HOST="unix://$work/docker.sock"
group=(); [[ -n "$sudo" ]] && group=(--group "$(id -g)")
# --ip-forward=false: this machine's forwarding setting stays as it is.
$sudo dockerd --storage-driver=vfs --iptables=false --ip-masq=false --ip-forward=false \
  --bridge="$bridge" --data-root "$work/data" --exec-root "$work/exec" -H "$DOCKER_HOST" \
  --pidfile "$work/dockerd.pid" "${group[@]}" > "$work/dockerd.log" 2>&1 &
dockerd_pid=$!
for _ in $(seq 1 120); do
  "$docker" version >/dev/null 2>&1 && break
  alive "$dockerd_pid" || break
  sleep 0.5
done
if ! "$docker" version >/dev/null 2>&1; then
  tail -20 "$work/dockerd.log" >&2
  fail "dockerd did not start (its log is above)"
fi
# With sudo, $! is sudo's: stop the daemon itself.
[[ -s "$work/dockerd.pid" ]] && dockerd_pid="$(cat "$work/dockerd.pid")"
say "dockerd $("$docker" version --format '{{.Server.Version}}') (pid $dockerd_pid) on $DOCKER_HOST, bridge $bridge $subnet"

# --- 4. the invoke image -----------------------------------------------------------
rootfs="$work/rootfs"
mkdir -p "$rootfs"/{bin,dev,etc,opt,proc,sys,tmp,var/runtime,var/task}
chmod 1777 "$rootfs/tmp"
busybox="$(command -v busybox)"
cp "$busybox" "$rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [[ "$applet" == busybox ]] || ln -sf busybox "$rootfs/bin/$applet"
done
# Every shared library the bootstraps (and busybox, when not static) load, at
# the path the loader looks for it.
for binary in "${bootstraps[@]}" "$busybox"; do
  ldd "$binary" 2>/dev/null | grep -o '/[^ ]*' || true
done | sort -u | while read -r library; do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
endpoint="http://$gateway:$moto" standin="http://$gateway:$bedrock"
tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -c . |
  "$docker" import \
    --change "ENV AWS_ENDPOINT_URL=$endpoint" \
    --change "ENV AWS_ENDPOINT_URL_BEDROCK_RUNTIME=$standin" \
    --change "ENV AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME=$standin" \
    --change "ENV AWS_ENDPOINT_URL_LAMBDA=$standin" \
    - "$image" >/dev/null
say "invoke image $image: busybox and $(find "$rootfs" -name '*.so*' | wc -l) shared libraries ($(du -sh "$rootfs" | cut -f1)), AWS_ENDPOINT_URL=$endpoint"

# --- 5. the local stack, and its relays onto the bridge -----------------------------
cargo build -q -p local-stack || fail "cargo build -p local-stack failed"
target_dir="$(tools/target-dir.sh)"   # CARGO_TARGET_DIR or a configured one may move it
setsid "$target_dir/debug/local-stack" --moto-port "$moto" --host-port "$host" --bedrock-port "$bedrock" --quiet \
  > "$work/stack.log" 2>&1 &
stack_pid=$!
for _ in $(seq 1 120); do
  curl -sf --max-time 2 "127.0.0.1:$host/healthz" >/dev/null && break
  alive "$stack_pid" || break
  sleep 1
done
curl -sf --max-time 2 "127.0.0.1:$host/healthz" >/dev/null || {
  tail -20 "$work/stack.log" >&2
  fail "the local stack did not start (its log is above)"
}
for port in "$moto" "$bedrock"; do
  socat "TCP-LISTEN:$port,bind=$gateway,reuseaddr,fork,range=$subnet" "TCP:127.0.0.1:$port" \
    2> "$work/relay-$port.log" &
  relay_pids+=($!)
done
for port in "$moto" "$bedrock"; do
  for _ in $(seq 1 50); do curl -s --max-time 1 -o /dev/null "http://$gateway:$port/" && break; sleep 0.1; done
  curl -s --max-time 1 -o /dev/null "http://$gateway:$port/" ||
    fail "the relay $gateway:$port -> 127.0.0.1:$port does not answer ($(cat "$work/relay-$port.log"))"
done
profiles="$root/.local/stack-$moto/aws"
export AWS_SHARED_CREDENTIALS_FILE="$profiles/credentials" AWS_CONFIG_FILE="$profiles/config"
say "local stack: moto 127.0.0.1:$moto, Bedrock and Lambda stand-ins 127.0.0.1:$bedrock, relayed on $gateway"

# --- 6. the invocations -----------------------------------------------------------
functions=(ChatStreamFunction:chat-stream FormIntakeFunction:form-intake OutboxSweeperFunction:outbox-sweeper
  EmailSenderFunction:email-sender SmsSenderFunction:sms-sender HandlerDispatchFunction:handler-dispatch
  FunnelProjectorFunction:funnel-projector)
# Each function's variables as the local stack registered it from the template
# (its tables, queue URL and names resolved): what Lambda would give it.
AWS_PROFILE=picasso-local python3 - "$work/env.json" "http://127.0.0.1:$moto" "${functions[@]}" <<'PY' ||
import json, subprocess, sys
out, endpoint, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
listed = json.loads(subprocess.run(
    ["aws", "lambda", "list-functions", "--endpoint-url", endpoint, "--region", "us-east-1", "--output", "json"],
    check=True, capture_output=True, text=True).stdout)["Functions"]
env = {}
for pair in pairs:
    logical, binary = pair.split(":")
    [function] = [f for f in listed if f["FunctionName"].startswith(f"picasso-{binary}-")]
    env[logical] = function["Environment"]["Variables"]
json.dump(env, open(out, "w"), indent=1)
PY
  fail "could not read the functions' environment from the local stack"

cat > "$work/check.py" <<'PY'
# check.py ANSWER EXPRESSION [EARLIER]: whether EXPRESSION holds of the answer
# `sam local invoke` printed. Names: out (its text), r (its JSON, if any), status,
# headers and body (of a Function URL answer, buffered or streamed), frames (the
# body's `data:` frames, parsed), earlier (the same for another answer, as a dict).
import json, sys

def parse(path):
    out = open(path, encoding="utf-8", errors="replace").read()
    r, status, headers, body = None, None, {}, out
    try:
        r = json.loads(out)
    except ValueError:
        pass
    if isinstance(r, dict) and "statusCode" in r:
        status, headers, body = r["statusCode"], r.get("headers") or {}, r.get("body") or ""
    elif "\0" * 8 in out:
        # A streamed answer: its prelude (status, headers), eight NULs, then the body.
        prelude, body = out.split("\0" * 8, 1)
        try:
            prelude = json.loads(prelude)
            status, headers = prelude.get("statusCode"), prelude.get("headers") or {}
        except ValueError:
            pass
    frames = []
    for line in body.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            try:
                frames.append(json.loads(line[len("data: "):]))
            except ValueError:
                pass
    return dict(out=out, r=r, status=status, headers=headers, body=body, frames=frames)

names = parse(sys.argv[1])
if len(sys.argv) > 3:
    names["earlier"] = parse(sys.argv[3])
try:
    held = eval(sys.argv[2], {"json": json}, names)
except Exception as error:  # a missing key or an unparsable body: the check fails
    print(f"      ({type(error).__name__}: {error})")
    held = False
sys.exit(0 if held else 1)
PY

invoke_started=$(date +%s)
failed=0 checks=0 invocations=0
invoke() { # logical id, event (under events/) -> $work/out (the answer), $work/log (SAM's and the function's lines)
  local logical="$1" event="$2"
  local profile="picasso-${event%%/*}"
  invocations=$((invocations + 1))
  timeout 300 "$sam" local invoke "$logical" --template "$build_dir/template.yaml" --event "events/$event" \
    --parameter-overrides "Architecture=$arch" --env-vars "$work/env.json" \
    --profile "$profile" --region us-east-1 --invoke-image "$image" --skip-pull-image \
    > "$work/out" 2> "$work/log" || say "sam local invoke $logical ($event) exited with $?"
}
check() { # description, python expression (see check.py), [an earlier answer's file]
  checks=$((checks + 1))
  if python3 "$work/check.py" "$work/out" "$2" ${3:+"$3"}; then
    echo "PASS  $1"
  else
    echo "FAIL  $1"
    echo "      answer: $(head -c 600 "$work/out" | tr '\0' '.')"
    echo "      sam local invoke's last lines:"; tail -12 "$work/log" | sed 's/^/        /'
    failed=$((failed + 1))
  fi
}

invoke ChatStreamFunction chat-stream/question.json
check "ChatStreamFunction chat-stream/question.json: 200, text frames, [DONE]" \
  'status == 200 and any(f["type"] == "text" for f in frames) and "data: [DONE]" in body'
invoke ChatStreamFunction chat-stream/question-with-history.json
check "ChatStreamFunction chat-stream/question-with-history.json: 200, text frames, [DONE]" \
  'status == 200 and any(f["type"] == "text" for f in frames) and "data: [DONE]" in body'
invoke ChatStreamFunction chat-stream/malformed-body.json
check "ChatStreamFunction chat-stream/malformed-body.json: 400, an invalid_json error frame, [DONE]" \
  'status == 400 and [f["type"] for f in frames] == ["error"] and frames[0]["code"] == "invalid_json" and "data: [DONE]" in body'
invoke ChatStreamFunction chat-stream/analytics-batch.json
check "ChatStreamFunction chat-stream/analytics-batch.json: 200 {\"accepted\":3}" \
  'status == 200 and json.loads(body) == {"accepted": 3}'
invoke ChatStreamFunction chat-stream/widget-fallback.json
check "ChatStreamFunction chat-stream/widget-fallback.json: 200, the turn as one JSON object" \
  'status == 200 and headers["content-type"].startswith("application/json") and {"content", "ctaButtons", "metadata", "session_id"} <= set(json.loads(body)) and json.loads(body)["content"]'
invoke FormIntakeFunction form-intake/get-config.json
check "FormIntakeFunction form-intake/get-config.json: 200, the public config, ETag and Cache-Control" \
  'status == 200 and json.loads(body)["tenant_hash"] == "ri3a9f2c7d41be" and "recipients" not in body and "tenant_id" not in json.loads(body) and "etag" in headers and "cache-control" in headers'
invoke FormIntakeFunction form-intake/validate-field-valid.json
check "FormIntakeFunction form-intake/validate-field-valid.json: validation_success" \
  'status == 200 and "validation_success" in body'
invoke FormIntakeFunction form-intake/validate-field-invalid-email.json
check "FormIntakeFunction form-intake/validate-field-invalid-email.json: validation_error" \
  '"validation_error" in body and "validation_success" not in body'
invoke FormIntakeFunction form-intake/submit-form-valid.json
check "FormIntakeFunction form-intake/submit-form-valid.json: 200, form_complete" \
  'status == 200 and any(f["type"] == "form_complete" and f["submissionId"] for f in frames)'
invoke FormIntakeFunction form-intake/submit-form-invalid.json
check "FormIntakeFunction form-intake/submit-form-invalid.json: form_error listing email and zip_code" \
  '[sorted(e["field"] for e in f["validation_errors"]) for f in frames if f["type"] == "form_error"] == [["email", "zip_code"]]'
invoke FormIntakeFunction form-intake/submit-form-duplicate-token.json
check "FormIntakeFunction form-intake/submit-form-duplicate-token.json: form_complete" \
  'any(f["type"] == "form_complete" and not f.get("duplicate") for f in frames)'
cp "$work/out" "$work/first-answer"
invoke FormIntakeFunction form-intake/submit-form-duplicate-token.json
check "FormIntakeFunction form-intake/submit-form-duplicate-token.json again: the first result, \"duplicate\": true" \
  '[(f["submissionId"], f.get("duplicate")) for f in frames if f["type"] == "form_complete"] == [(f["submissionId"], True) for f in earlier["frames"] if f["type"] == "form_complete"] != []' \
  "$work/first-answer"
invoke OutboxSweeperFunction outbox-sweeper/scheduled.json
check "OutboxSweeperFunction outbox-sweeper/scheduled.json: a sweep report" \
  '{"found", "published", "failed"} <= set(r)'
for pair in EmailSenderFunction:email-sender SmsSenderFunction:sms-sender HandlerDispatchFunction:handler-dispatch \
  FunnelProjectorFunction:funnel-projector; do
  invoke "${pair%%:*}" "${pair#*:}/sqs-batch.json"
  check "${pair%%:*} ${pair#*:}/sqs-batch.json: batchItemFailures lists only the malformed record" \
    '[f["itemIdentifier"] for f in r["batchItemFailures"]] == ["00000003-aaaa-4bbb-8ccc-dddddddddddd"]'
done
invoke_seconds=$(( $(date +%s) - invoke_started ))

if ((failed)); then
  say "$failed of $checks checks failed; the local stack's last lines:"
  tail -20 "$work/stack.log" >&2
  exit 1
fi
say "$invocations invocations: ${invoke_seconds} s (about $(( invoke_seconds / invocations )) s each: SAM's start, a container, the function)"
echo "PASS  sam-local-check: $checks checks, every sample event through sam local invoke as events/README.md says" \
  "($(( $(date +%s) - started )) s in all: sam build ${build_seconds} s, $invocations invocations ${invoke_seconds} s)"
