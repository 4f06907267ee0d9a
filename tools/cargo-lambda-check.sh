#!/usr/bin/env bash
# Every sample event in events/ through the real `cargo lambda` (the pinned
# cargo-lambda tools/bootstrap.sh installs), as events/README.md tells a user
# to run them: a local stack of its own, `cargo lambda watch`, then
# `cargo lambda invoke` with each event, and the Function URLs curled with
# and without a query string. Each answer is checked against what
# events/README.md says happens; prints PASS/FAIL per event.
#
#   tools/cargo-lambda-check.sh [--moto-port 4650] [--host-port 3150] [--bedrock-port 4651] [--watch-port 9050]
#
# Exit status: 0 when every check passed. Everything it started is stopped on exit.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

moto=4650 host=3150 bedrock=4651 watch=9050
while (($#)); do
  case "$1" in
    --moto-port) moto="${2:?}"; shift ;;
    --host-port) host="${2:?}"; shift ;;
    --bedrock-port) bedrock="${2:?}"; shift ;;
    --watch-port) watch="${2:?}"; shift ;;
    *) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -- "-$pid" 2>/dev/null || kill "$pid" 2>/dev/null; done
  wait 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

tools/bootstrap.sh >/dev/null
export PATH="$root/.venv/bin:$PATH"
cargo build -q -p local-stack || exit 1
target_dir="$(tools/target-dir.sh)"   # CARGO_TARGET_DIR or a configured one may move it

setsid "$target_dir/debug/local-stack" --moto-port "$moto" --host-port "$host" --bedrock-port "$bedrock" --quiet \
  > "$work/stack.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -sf --max-time 2 "127.0.0.1:$host/healthz" >/dev/null && break; sleep 1; done
curl -sf --max-time 2 "127.0.0.1:$host/healthz" >/dev/null || { tail -20 "$work/stack.log"; echo "FAIL: the local stack did not start"; exit 1; }

# As events/README.md: the functions run "in AWS" under the emulated Runtime API.
export CONFIG_BUCKET=myrecruiter-picasso FORM_SUBMISSIONS_TABLE=picasso-form-submissions \
       SMS_USAGE_TABLE=picasso-sms-usage RATE_LIMITS_TABLE=picasso-rate-limits-local \
       SUBMISSIONS_BUCKET=tenant-form-submissions AWS_REGION=us-east-1 \
       AWS_ENDPOINT_URL="http://127.0.0.1:$moto" \
       AWS_ENDPOINT_URL_BEDROCK_RUNTIME="http://127.0.0.1:$bedrock" \
       AWS_ENDPOINT_URL_BEDROCK_AGENT_RUNTIME="http://127.0.0.1:$bedrock" \
       AWS_ENDPOINT_URL_LAMBDA="http://127.0.0.1:$bedrock" WEBHOOK_ALLOW_PRIVATE=true \
       FUNNEL_TABLE=picasso-funnel-local \
       VISITOR_KEY_SECRET="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
profiles="$root/.local/stack-$moto/aws"
[[ "$moto" == 4566 ]] && profiles="$root/.local/aws"
export AWS_SHARED_CREDENTIALS_FILE="$profiles/credentials"
AWS_ACCESS_KEY_ID=$(aws configure get aws_access_key_id --profile picasso-local)
AWS_SECRET_ACCESS_KEY=$(aws configure get aws_secret_access_key --profile picasso-local)
export AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

setsid cargo lambda watch -A 127.0.0.1 -P "$watch" > "$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do curl -s --max-time 1 "127.0.0.1:$watch/" >/dev/null 2>&1 && break; sleep 1; done

failed=0
check() { # name, output file, python expression over `out` (the text) that must hold
  if python3 - "$2" "$3" <<'PY'
import json, sys
out = open(sys.argv[1], encoding="utf-8", errors="replace").read()
sys.exit(0 if eval(sys.argv[2]) else 1)
PY
  then echo "PASS  $1"
  else echo "FAIL  $1: $(head -c 300 "$2")"; failed=$((failed + 1)); fi
}
invoke() { # function, event file → its answer
  timeout 180 cargo lambda invoke -A 127.0.0.1 -P "$watch" "$1" --data-file "events/$2" > "$work/out" 2>&1
}
failures() { # the SQS answer's failed item count
  echo 'len(json.loads(out[out.index("{"):])["batchItemFailures"])'
}

invoke chat-stream chat-stream/question.json;              check "chat-stream question.json streams text to [DONE]" "$work/out" '"\"type\":\"text\"" in out and "[DONE]" in out'
invoke chat-stream chat-stream/question-with-history.json; check "chat-stream question-with-history.json streams text" "$work/out" '"\"type\":\"text\"" in out and "[DONE]" in out'
invoke chat-stream chat-stream/analytics-batch.json;       check "chat-stream analytics-batch.json: accepted 3" "$work/out" '"\"accepted\":3" in out.replace(" ", "")'
invoke chat-stream chat-stream/widget-fallback.json;       check "chat-stream widget-fallback.json: the turn as JSON" "$work/out" '"\"content\"" in out'
invoke form-intake form-intake/get-config.json;            check "form-intake get-config.json: the public config" "$work/out" '"tenant_hash" in out and "recipients" not in out'
invoke form-intake form-intake/validate-field-valid.json;  check "form-intake validate-field-valid.json: validation_success" "$work/out" '"validation_success" in out'
invoke form-intake form-intake/validate-field-invalid-email.json; check "form-intake validate-field-invalid-email.json: validation_error" "$work/out" '"validation_error" in out'
invoke form-intake form-intake/submit-form-valid.json;     check "form-intake submit-form-valid.json: form_complete" "$work/out" '"form_complete" in out'
invoke form-intake form-intake/submit-form-invalid.json;   check "form-intake submit-form-invalid.json: form_error" "$work/out" '"form_error" in out'
invoke form-intake form-intake/submit-form-duplicate-token.json; check "form-intake submit-form-duplicate-token.json: form_complete" "$work/out" '"form_complete" in out'
invoke outbox-sweeper outbox-sweeper/scheduled.json;       check "outbox-sweeper scheduled.json: a sweep report" "$work/out" '"found" in out and "published" in out'
for consumer in email-sender sms-sender handler-dispatch funnel-projector; do
  invoke "$consumer" "$consumer/sqs-batch.json"
  check "$consumer sqs-batch.json: only the poison record comes back" "$work/out" "$(failures) == 1"
done

url() { # function, query → status and body
  curl -s --max-time 60 -o "$work/out" -w '%{http_code}' "http://127.0.0.1:$watch/lambda-url/$1/$2" \
    -H 'content-type: application/json' -d "$3"
}
status=$(url form-intake "" '{"tenant_hash":"ri3a9f2c7d41be","form_mode":true,"action":"validate_field","field_id":"email","field_value":"ana@example.org"}')
check "form-intake URL without a query string: 200 ($status)" "$work/out" "$status == 200 and 'validation_success' in out"
status=$(url chat-stream "" '{"tenant_hash":"ri3a9f2c7d41be","user_input":"What is Reading Buddies?"}')
check "chat-stream URL without a query string: 200 ($status)" "$work/out" "$status == 200 and '[DONE]' in out"
status=$(url chat-stream "" '{not json')
check "chat-stream URL, malformed body: 400 ($status) with an error frame" "$work/out" "$status == 400 and 'invalid_json' in out"

if ((failed)); then
  echo "cargo-lambda-check: $failed failed (cargo lambda watch's log: kept below)"
  tail -40 "$work/watch.log"
  exit 1
fi
echo "cargo-lambda-check: every sample event answered as events/README.md says"
