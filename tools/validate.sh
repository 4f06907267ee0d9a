#!/usr/bin/env bash
# The deployment guide's post-deployment validation (its seven steps), against
# the local stack or a deployed one, printing each step's expected and actual
# result. Exit status: 0 when every step that ran passed.
#
#   tools/validate.sh --local [--moto-port N]
#   tools/validate.sh --stack <name> --tenant-hash <hash> [--stage S] [--region R]
#
# --local finds the stack tools/run-local.sh is running (its stack.json, in
# .local/ or .local/stack-<moto port>/), talks to it as its administrator
# profile and submits the demo tenant's Reading Buddy form; with several
# stacks running, --moto-port N picks one. (--moto-port, --host-port and
# --profiles DIR together name a stack that wrote no stack.json, as tests do.) --stack reads
# the Function URLs from the stack's outputs and uses your AWS credentials;
# give the hash of a tenant whose config has the `reading_buddy_application`
# form, or `--form-id` and `--form-data '<json>'` for one of yours.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

mode="" stack="" stage="" region="us-east-1" moto_port="" host_port="" profiles=""
tenant_hash="ri3a9f2c7d41be" form_id="reading_buddy_application"
form_data='{"age_18_plus":"yes","first_name":"Test","last_name":"User","email":"test@example.org","phone":"+1 (503) 555-0100","zip_code":"97412","availability":"Weekday afternoons","why_reading_buddies":"A post-deployment validation run.","urgency":"normal"}'
while (($#)); do
  case "$1" in
    --local) mode=local ;;
    --stack) mode=stack; stack="${2:?--stack needs a name}"; shift ;;
    --stage) stage="${2:?}"; shift ;;
    --region) region="${2:?}"; shift ;;
    --tenant-hash) tenant_hash="${2:?}"; shift ;;
    --form-id) form_id="${2:?}"; shift ;;
    --form-data) form_data="${2:?}"; shift ;;
    --moto-port) moto_port="${2:?}"; shift ;;
    --host-port) host_port="${2:?}"; shift ;;
    --profiles) profiles="${2:?}"; shift ;;
    *) echo "unknown argument $1 (see the top of $0)" >&2; exit 2 ;;
  esac
  shift
done
[[ -n "$mode" ]] || { echo "give --local or --stack <name> (see the top of $0)" >&2; exit 2; }

# The running local stacks: each writes stack.json (its pid and addresses) while it runs.
find_local_stack() {
  python3 - "$root/.local" "$moto_port" <<'PY'
import glob, json, os, sys
local, wanted = sys.argv[1], sys.argv[2]
running = []
for path in sorted(glob.glob(f"{local}/stack.json") + glob.glob(f"{local}/stack-*/stack.json")):
    try:
        about = json.load(open(path))
        os.kill(about["pid"], 0)
    except (OSError, ValueError, KeyError):
        continue  # a stack that stopped without cleaning up
    running.append(about)
if wanted:
    running = [s for s in running if s["aws_endpoint"].rsplit(":", 1)[-1] == wanted]
if len(running) != 1:
    if not running:
        print("no local stack is running" + (f" with --moto-port {wanted}" if wanted else "")
              + ": start one with tools/run-local.sh", file=sys.stderr)
    else:
        ports = ", ".join(s["aws_endpoint"].rsplit(":", 1)[-1] for s in running)
        print(f"{len(running)} local stacks are running (moto ports {ports}): pick one with --moto-port N",
              file=sys.stderr)
    sys.exit(2)
s = running[0]
print(s["aws_endpoint"].rsplit(":", 1)[-1], s["host_port"], s["profiles"])
PY
}

aws_cli="aws"
[[ -x "$root/.venv/bin/aws" ]] && aws_cli="$root/.venv/bin/aws"
if [[ "$mode" == local ]]; then
  if [[ -z "$host_port" || -z "$profiles" || -z "$moto_port" ]]; then
    found="$(find_local_stack)" || exit 2
    read -r moto_port host_port profiles <<<"$found"
  fi
  echo "the local stack: AWS emulator on port $moto_port, host on port $host_port, profiles in $profiles" >&2
  stage=local
  export AWS_CONFIG_FILE="$profiles/config" AWS_SHARED_CREDENTIALS_FILE="$profiles/credentials"
  export AWS_PROFILE=picasso-local AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port" AWS_REGION="$region"
  chat_url="http://127.0.0.1:$host_port/chat"
  forms_url="http://127.0.0.1:$host_port/forms"
  table=picasso-form-submissions
else
  export AWS_REGION="$region"
  output() {
    "$aws_cli" cloudformation describe-stacks --stack-name "$stack" \
      --query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
  }
  chat_url="$(output ChatStreamUrl)" forms_url="$(output FormIntakeUrl)" table="$(output FormSubmissionsTable)"
  [[ -n "$stage" ]] || stage="$("$aws_cli" cloudformation describe-stacks --stack-name "$stack" \
    --query "Stacks[0].Parameters[?ParameterKey=='Stage'].ParameterValue" --output text)"
fi
aws() { "$aws_cli" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

passed=0 failed=0 skipped=0 run_started_ms=$(($(date +%s) * 1000))
report() { # step, expected, actual, verdict (pass|fail|skip)
  printf '\n== Step %s\n   expected: %s\n   actual:   %s\n   %s\n' "$1" "$2" "$3" "${4^^}"
  case "$4" in pass) passed=$((passed + 1)) ;; fail) failed=$((failed + 1)) ;; *) skipped=$((skipped + 1)) ;; esac
}
verdict() { if eval "$1"; then echo pass; else echo fail; fi; }
post() { curl -sS --max-time 60 -X POST "$1" -H 'Content-Type: application/json' -d "$2" 2>&1; }

# 1. Configuration
function="picasso-chat-stream-$stage"
config="$(aws lambda get-function-configuration --function-name "$function" --qualifier live \
  --query '{Runtime: Runtime, Timeout: Timeout, Memory: MemorySize, Environment: keys(Environment.Variables)}' \
  --output json 2>&1)"
mode_url="$(aws lambda get-function-url-config --function-name "$function" --qualifier live \
  --query InvokeMode --output text 2>&1)"
actual="$(echo "$config" | json 'd["Runtime"], d["Timeout"], d["Memory"], "CONFIG_BUCKET" in d["Environment"]' 2>&1), InvokeMode $mode_url"
report "1: configuration of $function" \
  "provided.al2023, the template's Timeout and MemorySize, CONFIG_BUCKET set, InvokeMode RESPONSE_STREAM" \
  "$actual" "$(verdict '[[ "$actual" == *provided.al2023*True* && "$mode_url" == RESPONSE_STREAM ]]')"

# 2. Conversation
answer="$(post "$chat_url" "{\"tenant_hash\":\"$tenant_hash\",\"user_input\":\"What volunteer opportunities do you have?\"}")"
texts="$(grep -c '"type":"text"' <<<"$answer")"
report "2: a conversation streams" "SSE text frames, then data: [DONE]" \
  "$texts text frames; last line: $(grep 'data:' <<<"$answer" | tail -1)" \
  "$(verdict '[[ $texts -gt 0 && "$answer" == *"data: [DONE]"* ]]')"

# 3. Form validation
invalid="$(post "$chat_url" "{\"tenant_hash\":\"$tenant_hash\",\"form_mode\":true,\"action\":\"validate_field\",\"form_id\":\"$form_id\",\"field_id\":\"email\",\"field_value\":\"invalid-email\"}")"
frame="$(grep -o 'data: {"type":"validation_error"[^}]*}' <<<"$invalid")"
report "3: field validation" 'data: {"type":"validation_error","field":"email",...} then data: [DONE]' \
  "${frame:-$(tr '\n' ' ' <<<"$invalid" | head -c 300)}" "$(verdict '[[ -n "$frame" ]]')"

# 4. Form submission
submitted="$(post "$chat_url" "{\"tenant_hash\":\"$tenant_hash\",\"form_mode\":true,\"action\":\"submit_form\",\"form_id\":\"$form_id\",\"form_data\":$form_data}")"
submission_id="$(grep -o '"submissionId":"[^"]*"' <<<"$submitted" | head -1 | cut -d'"' -f4)"
actual="form_complete, submissionId $submission_id"
[[ -n "$submission_id" ]] || actual="$(tr '\n' ' ' <<<"$submitted" | head -c 300)"
report "4: form submission" 'data: {"type":"form_complete","status":"success","submissionId":...}' \
  "$actual" "$(verdict '[[ -n "$submission_id" ]]')"

# 5. Logs
group="/aws/lambda/picasso-chat-stream-$stage"
lines="$(aws logs filter-log-events --log-group-name "$group" --start-time $((($(date +%s) - 300) * 1000)) \
  --query 'length(events)' --output text 2>&1)"
# ERROR lines counted from the JSON itself: the same in AWS and in moto (which has no JSON filter patterns).
# The verdict is on the lines this run's own requests caused; earlier ones in the hour are shown to investigate.
count_errors() { # since, in epoch milliseconds
  aws logs filter-log-events --log-group-name "$group" --start-time "$1" \
    --query 'events[].message' --output json 2>&1 | python3 -c '
import json, sys
def level(line):
    try:
        return json.loads(line).get("level")
    except ValueError:
        return None
print(sum(1 for line in json.load(sys.stdin) if level(line) == "ERROR"))' 2>&1
}
errors="$(count_errors "$run_started_ms")"
errors_hour="$(count_errors $((($(date +%s) - 3600) * 1000)))"
if [[ "$mode" == local && "$lines" == 0 ]]; then
  report "5: logs in $group" "lines from the last 5 minutes, no ERROR lines from this run's requests" \
    "the group is empty: this local stack does not ship its functions' lines (tools/run-local.sh's does)" skip
else
  report "5: logs in $group" "lines from the last 5 minutes, no ERROR lines from this run's requests" \
    "$lines lines, $errors ERROR lines from this run ($errors_hour in the last hour: investigate any)" \
    "$(verdict '[[ "$lines" =~ ^[0-9]+$ && $lines -gt 0 && "$errors" == 0 ]]')"
fi

# 6. Data and fulfillment
status=""
for _ in $(seq 1 30); do
  [[ -n "$submission_id" ]] || break
  status="$(aws dynamodb get-item --table-name "$table" --consistent-read \
    --key "{\"submission_id\":{\"S\":\"$submission_id\"}}" --query 'Item.status.S' --output text 2>&1)"
  [[ "$status" == fulfilled || "$status" == partially_fulfilled ]] && break
  sleep 2
done
report "6: the submission in $table and its fulfillment" "status fulfilled (every channel sent or skipped)" \
  "status ${status:-none}" "$(verdict '[[ "$status" == fulfilled ]]')"

# 7. Metrics and alarms
alarms="$(aws cloudwatch describe-alarms --alarm-name-prefix picasso- --query 'length(MetricAlarms)' --output text 2>&1)"
# The state is filtered here, not with --state-value (which moto ignores).
in_alarm="$(aws cloudwatch describe-alarms --alarm-name-prefix picasso- \
  --query "MetricAlarms[?StateValue=='ALARM'].AlarmName" --output text 2>&1)"
if [[ "$mode" == local && "$alarms" == 0 ]]; then
  report "7: metrics and alarms" "the template's alarms, none in ALARM" \
    "no alarms: this local stack was started without them (tools/run-local.sh's has them)" skip
else
  report "7: metrics and alarms" "the template's alarms, none in ALARM" "$alarms alarms; in ALARM: ${in_alarm:-none}" \
    "$(verdict '[[ "$alarms" =~ ^[0-9]+$ && $alarms -gt 0 && -z "$in_alarm" ]]')"
fi

printf '\n%s passed, %s failed, %s skipped\n' "$passed" "$failed" "$skipped"
((failed == 0))
