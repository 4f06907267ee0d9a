#!/usr/bin/env bash
# A long run against one local stack, as an operator's would be: starts the
# stack (tools/run-local.sh on ports 4620/3120/4621, so a stack on the default
# ports is left alone; this one's profiles and moto log go to
# .local/stack-4620/), submits forms (4 at a time) and chats (1 at a time)
# until SOAK_SUBMISSIONS are in or SOAK_MINUTES have passed, and every
# SOAK_INTERVAL seconds prints /healthz's latency, the emulator's and the
# host's resident memory and what the emulator dropped (tools/soak/soak.py);
# 30 s after the load, twenty /healthz latencies. Stops everything it
# started, also on Ctrl-C. Nothing here asserts a figure; it exits 1 when a
# submission did not succeed.
#   SOAK_SUBMISSIONS (3000), SOAK_MINUTES (15, at most 120), SOAK_INTERVAL (30)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
submissions="${SOAK_SUBMISSIONS:-3000}"
minutes="${SOAK_MINUTES:-15}"
interval="${SOAK_INTERVAL:-30}"
(( submissions > 0 && submissions <= 100000 )) || { echo "SOAK_SUBMISSIONS: 1 to 100000" >&2; exit 2; }
(( minutes > 0 && minutes <= 120 )) || { echo "SOAK_MINUTES: 1 to 120" >&2; exit 2; }
moto=4620 host=3120 bedrock=4621

commit="$(git rev-parse --short HEAD)"
[[ -n "$(git status --porcelain --untracked-files=no)" ]] && commit="$commit (with uncommitted changes)"
echo "== soak of commit $commit on $(date -u +%Y-%m-%d), $(nproc) cores: $submissions submissions or $minutes min"

log="$(mktemp -t picasso-soak.XXXXXX.log)"
tools/run-local.sh --moto-port "$moto" --host-port "$host" --bedrock-port "$bedrock" --quiet >"$log" 2>&1 &
stack=$!  # run-local.sh execs the local stack: this is its pid, and it stops what it started
driver="" emulator=""
stop() {
  if [[ -n "$driver" ]]; then kill -TERM "$driver" 2>/dev/null || true; wait "$driver" 2>/dev/null || true; fi
  if kill -0 "$stack" 2>/dev/null; then
    kill -TERM "$stack" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$stack" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$stack" 2>/dev/null || true
  fi
  wait "$stack" 2>/dev/null || true
  # Only if the stack had to be killed: its emulator is then left behind.
  if [[ -n "$emulator" ]] && kill -0 "$emulator" 2>/dev/null; then kill -TERM "$emulator" 2>/dev/null || true; fi
}
trap stop EXIT
trap 'exit 130' INT TERM

echo "== starting the stack (log: $log)"
for _ in $(seq 1 1200); do
  curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$host/healthz" 2>/dev/null && break
  kill -0 "$stack" 2>/dev/null || { echo "the stack did not start:" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.5
done
curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$host/healthz" || { echo "the stack did not answer in 10 min" >&2; exit 1; }
emulator="$(pgrep -P "$stack" -f moto_server.py || true)"

# In the background, so a signal to this script is handled at once (bash waits for a foreground child).
python3 tools/soak/soak.py "http://127.0.0.1:$host" "http://127.0.0.1:$moto" "$stack" \
  "$submissions" "$((minutes * 60))" "$interval" &
driver=$!
wait "$driver" && status=0 || status=$?
driver=""
echo "== the outbox: $(curl -fsS --max-time 10 "http://127.0.0.1:$host/outbox?limit=1" |
  python3 -c 'import json,sys; o=json.load(sys.stdin); print("kept", o["kept"], "dropped", o["dropped"])')"
moto_log=".local/stack-$moto/moto.log"  # the local stack's place for a stack on another port
[[ -f "$moto_log" ]] && echo "== moto's request log: $(du -h "$moto_log" | cut -f1) in $moto_log"
exit "$status"
