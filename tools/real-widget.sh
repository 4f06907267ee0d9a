#!/usr/bin/env bash
# Builds the REAL Picasso widget from its repository (outside this repo), with
# only its deployment constants pointed at a local stack, and drives it in
# headless Chromium through the canonical-forms volunteer application: the
# tenant page embeds widget.js, the visitor opens the widget, clicks the
# welcome chip, clicks the CTA that starts the form, answers all 14 steps and
# submits. Then it checks the local stack: the submission in DynamoDB (every
# answer, the applicant's contact) and the two emails fulfillment sent.
#
#   tools/real-widget.sh [--widget-src PATH] [--work-dir DIR] [--screenshot PNG]
#                        [--moto-port 4610] [--host-port 3110] [--bedrock-port 4611]
#                        [--stack-timeout SECONDS]
#
# --widget-src (or PICASSO_WIDGET_REPO): a bare git mirror of longhornrumble/picasso
#   (default /work/.mirror/longhornrumble+picasso/repo; WIDGET_REF, default HEAD),
#   a checkout holding Picasso/, or the Picasso directory itself. Absent: prints
#   "skipped: no widget repository" and exits 0.
# --work-dir (or REAL_WIDGET_WORK, default /tmp/picasso-real-widget): where the
#   widget is extracted and built, playwright-core installed, logs and results kept.
#
# Needs node >= 18 with npm (the npm registry, for the widget's dependencies and
# playwright-core), python3 and Chromium (/usr/bin/chromium; CHROMIUM=...).
# Everything listens on 127.0.0.1 and everything started here is stopped on exit.
# Exit status: 0 PASS (or skipped), 1 FAIL, 2 usage or environment problem.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
here="$root/tools/real-widget"

widget_src="${PICASSO_WIDGET_REPO:-/work/.mirror/longhornrumble+picasso/repo}"
widget_ref="${WIDGET_REF:-HEAD}"
work="${REAL_WIDGET_WORK:-/tmp/picasso-real-widget}"
screenshot="/tmp/real-widget-volunteer-application.png"
moto_port=4610 host_port=3110 bedrock_port=4611
stack_timeout=480
chromium="${CHROMIUM:-/usr/bin/chromium}"
playwright_version="${PLAYWRIGHT_CORE_VERSION:-1.65.2}"

usage() { sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case "$1" in
    --widget-src) widget_src="$2"; shift 2 ;;
    --work-dir) work="$2"; shift 2 ;;
    --screenshot) screenshot="$2"; shift 2 ;;
    --moto-port) moto_port="$2"; shift 2 ;;
    --host-port) host_port="$2"; shift 2 ;;
    --bedrock-port) bedrock_port="$2"; shift 2 ;;
    --stack-timeout) stack_timeout="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

say() { printf '[real-widget %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { say "FAIL: $*"; exit "${2:-1}"; }
started=$(date +%s)

# --- The widget's source ------------------------------------------------------
kind=""
if [ -f "$widget_src/HEAD" ] && [ -d "$widget_src/objects" ]; then
  kind=git
elif [ -f "$widget_src/Picasso/package.json" ]; then
  kind=tree; widget_tree="$widget_src/Picasso"
elif [ -f "$widget_src/package.json" ] && [ -f "$widget_src/esbuild.config.mjs" ]; then
  kind=tree; widget_tree="$widget_src"
fi
if [ -z "$kind" ]; then
  echo "skipped: no widget repository at $widget_src (set --widget-src or PICASSO_WIDGET_REPO)"
  exit 0
fi

mkdir -p "$work"
work="$(cd "$work" && pwd -P)"
case "$work/" in
  "$(cd "$root" && pwd -P)/"*) die "--work-dir must be outside the repository ($work)" 2 ;;
esac
command -v node >/dev/null && command -v npm >/dev/null || die "node and npm are needed" 2
[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ] || die "node >= 18 is needed" 2
command -v python3 >/dev/null || die "python3 is needed" 2
command -v curl >/dev/null || die "curl is needed" 2
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing chromium (apt-get)"
    timeout 600 apt-get install -y chromium >/dev/null || die "apt-get install chromium failed" 2
  fi
  [ -x "$chromium" ] || die "no Chromium at $chromium (apt-get install -y chromium, or CHROMIUM=...)" 2
fi

# --- Everything started here stops on exit -------------------------------------
pgids=()
cleanup() {
  local status=$?
  set +e
  for pg in "${pgids[@]}"; do
    kill -TERM -- "-$pg" 2>/dev/null
  done
  for pg in "${pgids[@]}"; do
    for _ in $(seq 1 40); do kill -0 -- "-$pg" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pg" 2>/dev/null
  done
  [ ${#pgids[@]} -gt 0 ] && say "stopped what this run started; took $(( $(date +%s) - started )) s"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# Runs "$@" in a process group of its own (its pid is the group id), output to $log.
spawn() {
  local log="$1"; shift
  setsid "$@" >"$log" 2>&1 < /dev/null &
  pgids+=("$!")
  spawned=$!
}
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_busy() { python3 -c 'import socket,sys; s=socket.socket(); sys.exit(s.connect_ex(("127.0.0.1",int(sys.argv[1])))!=0)' "$1"; }

for p in "$moto_port" "$host_port" "$bedrock_port"; do
  if port_busy "$p"; then die "port $p is in use (another local stack?); choose others with --moto-port/--host-port/--bedrock-port" 2; fi
done
widget_port=$(free_port)
site_port=$(free_port)
while [ "$site_port" = "$widget_port" ]; do site_port=$(free_port); done
widget_origin="http://127.0.0.1:$widget_port"
site_origin="http://127.0.0.1:$site_port"
host_url="http://127.0.0.1:$host_port"

# --- Extract and build the widget ---------------------------------------------
src_dir="$work/widget/Picasso"
mkdir -p "$src_dir"
# Keep node_modules (reused while package-lock.json is unchanged), replace the rest.
find "$src_dir" -mindepth 1 -maxdepth 1 ! -name node_modules -exec rm -rf {} +
if [ "$kind" = git ]; then
  commit=$(git -C "$widget_src" rev-parse --verify "$widget_ref^{commit}") || die "no $widget_ref in $widget_src" 2
  git -C "$widget_src" archive "$commit" Picasso | tar -x -C "$work/widget" --exclude=Picasso/node_modules
  say "widget: $widget_src at $commit"
else
  commit=$(git -C "$widget_tree" rev-parse HEAD 2>/dev/null || echo "(not a git checkout)")
  tar -C "$widget_tree" --exclude=./node_modules --exclude=./dist -cf - . | tar -x -C "$src_dir"
  say "widget: $widget_tree ($commit)"
fi
[ -f "$src_dir/package-lock.json" ] || die "the widget has no package-lock.json" 2
lock_sum=$(sha256sum "$src_dir/package-lock.json" | cut -d' ' -f1)
if [ ! -d "$src_dir/node_modules" ] || [ "$(cat "$work/widget/.lock-sum" 2>/dev/null)" != "$lock_sum" ]; then
  say "npm ci (the widget's dependencies)"
  (cd "$src_dir" && timeout 600 npm ci --no-audit --no-fund --loglevel=error) > "$work/npm-ci.log" 2>&1 \
    || { tail -20 "$work/npm-ci.log"; die "npm ci failed (log: $work/npm-ci.log)" 2; }
  echo "$lock_sum" > "$work/widget/.lock-sum"
fi

# Only the deployment constants change: the three endpoints this backend serves
# (docs/widget.md), the widget's own domain (where
# iframe.html is served), and the Master_Function base (conversation,
# log_error, assets), which this backend does not serve, on the local host so
# nothing leaves the machine.
python3 - "$work/overrides.json" "$host_url" "$widget_origin" <<'PY'
import json, sys
out, host, widget = sys.argv[1:]
json.dump({
    "__STREAMING_ENDPOINT__": f"{host}/chat",
    "__CHAT_ENDPOINT__": f"{host}/chat?action=chat",
    "__CONFIG_ENDPOINT__": f"{host}/forms?action=get_config",
    "__API_BASE_URL__": f"{host}/Master_Function",
    "__CONVERSATION_ENDPOINT__": f"{host}/Master_Function?action=conversation",
    "__ERROR_REPORTING_ENDPOINT__": f"{host}/Master_Function?action=log_error",
    "__WIDGET_DOMAIN__": widget,
    "__CONFIG_DOMAIN__": widget,
}, open(out, "w"), indent=1)
PY
say "building the widget (its production build; endpoints -> $host_url, widget domain $widget_origin)"
timeout 300 node "$here/build.mjs" "$src_dir" "$work/overrides.json" > "$work/build.log" 2>&1 \
  || { tail -30 "$work/build.log"; die "the widget build failed (log: $work/build.log)" 2; }
dist="$src_dir/dist/production"
[ -f "$dist/widget.js" ] && [ -f "$dist/iframe.html" ] || die "the build made no widget.js/iframe.html in $dist" 2
grep -q "$host_url/chat" "$dist/iframe-main.js" || die "the built iframe does not name $host_url/chat" 2

# --- playwright-core (driver only; Chromium is the system's) --------------------
driver_dir="$work/driver"
if [ "$(node -p "try{require('$driver_dir/node_modules/playwright-core/package.json').version}catch{''}" 2>/dev/null)" != "$playwright_version" ]; then
  say "npm install playwright-core@$playwright_version (into $driver_dir)"
  mkdir -p "$driver_dir"
  [ -f "$driver_dir/package.json" ] || echo '{"name":"real-widget-driver","private":true}' > "$driver_dir/package.json"
  (cd "$driver_dir" && timeout 300 npm install --no-audit --no-fund --loglevel=error "playwright-core@$playwright_version") \
    > "$work/npm-playwright.log" 2>&1 || { tail -20 "$work/npm-playwright.log"; die "installing playwright-core failed" 2; }
fi

# --- The tenant's site and the widget's domain ----------------------------------
tenant_id=BRI071351
tenant_hash=br7a51c0de0713
probe_hash=br7a51c0de0799
site_dir="$work/site"
mkdir -p "$site_dir"
cat > "$site_dir/index.html" <<HTML
<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>BrightPath (local test page)</title>
<link rel="icon" href="data:,"></head>
<body>
<h1>BrightPath (local test page)</h1>
<p>The tenant's site: it embeds the widget from its own domain, $widget_origin.</p>
<script src="$widget_origin/widget.js" data-tenant="$tenant_hash"></script>
</body>
</html>
HTML
spawn "$work/widget-server.log" python3 -m http.server "$widget_port" --bind 127.0.0.1 --directory "$dist"
spawn "$work/site-server.log" python3 -m http.server "$site_port" --bind 127.0.0.1 --directory "$site_dir"

# --- The local stack --------------------------------------------------------------
say "starting tools/run-local.sh --moto-port $moto_port --host-port $host_port --bedrock-port $bedrock_port (WIDGET_ORIGINS=$widget_origin); log $work/stack.log"
spawn "$work/stack.log" env WIDGET_ORIGINS="$widget_origin" "$root/tools/run-local.sh" \
  --moto-port "$moto_port" --host-port "$host_port" --bedrock-port "$bedrock_port"
stack_pid=$spawned
ready_by=$(( $(date +%s) + stack_timeout ))
until grep -q "Picasso local stack is up" "$work/stack.log" 2>/dev/null; do
  if ! kill -0 "$stack_pid" 2>/dev/null; then
    tail -30 "$work/stack.log"; die "the local stack stopped before it was up (log: $work/stack.log)"
  fi
  [ "$(date +%s)" -lt "$ready_by" ] || { tail -15 "$work/stack.log"; die "the local stack was not up within $stack_timeout s (--stack-timeout)"; }
  sleep 1
done
# The administrator's credentials: a stack on ports of its own keeps them in
# .local/stack-<moto port>/aws (the default stack in .local/aws).
profiles="$root/.local/aws"
[ "$moto_port" = 4566 ] || profiles="$root/.local/stack-$moto_port/aws"
aws_dir="$work/aws"
mkdir -p "$aws_dir"
cp "$profiles/config" "$profiles/credentials" "$aws_dir/"
export AWS_CONFIG_FILE="$aws_dir/config" AWS_SHARED_CREDENTIALS_FILE="$aws_dir/credentials" AWS_PROFILE=picasso-local
aws_cli="$root/.venv/bin/aws"
grep -q "endpoint_url = http://127.0.0.1:$moto_port\$" "$aws_dir/config" \
  || die "$profiles names another emulator than 127.0.0.1:$moto_port"
health=$(curl -sf --max-time 10 "$host_url/healthz") || die "GET $host_url/healthz failed"
read -r bucket table < <(python3 -c 'import json,sys; r=json.loads(sys.argv[1])["resources"]; print(r["config_bucket"], r["form_submissions_table"])' "$health")
"$aws_cli" s3 ls "s3://$bucket/mappings/" > /dev/null 2>&1 \
  || die "the copied credentials do not work against 127.0.0.1:$moto_port (another stack rewrote them?); run again"
say "stack up after $(( $(date +%s) - started )) s: bucket $bucket, table $table"

# --- The tenant -----------------------------------------------------------------
fixture="$root/tests/fixtures/tenant-configs/bri071351-canonical-forms.json"
# As a real tenant lists them: its own site only. The widget's origin is
# answered because the stack's WIDGET_ORIGINS names it.
allowed=("$site_origin")
origins=()
for o in "${allowed[@]}"; do origins+=(--allow-origin "$o"); done
python3 "$here/tenant.py" "$fixture" "$work/tenant" --tenant-id "$tenant_id" --tenant-hash "$tenant_hash" \
  "${origins[@]}" --kb-id BRIKB00001
python3 "$here/tenant.py" "$fixture" "$work/probe-tenant" --tenant-id "${tenant_id}P" --tenant-hash "$probe_hash" \
  --allow-origin "$site_origin"
put() { "$aws_cli" s3 cp --quiet "$1" "s3://$bucket/$2"; }
put "$work/tenant/config.json" "tenants/$tenant_id/config.json"
put "$work/tenant/mapping.json" "mappings/$tenant_hash.json"
put "$work/tenant/kb/volunteering.md" "knowledge-base/BRIKB00001/volunteering.md"
put "$work/probe-tenant/config.json" "tenants/${tenant_id}P/config.json"
put "$work/probe-tenant/mapping.json" "mappings/$probe_hash.json"
say "tenant $tenant_id ($tenant_hash) uploaded; allowed_origins ${allowed[*]}"

# Probe: a tenant whose allowed_origins is only its site, asked for its widget
# config from the widget's own origin, as the widget's iframe asks.
python3 - "$work/probe.json" "$host_url" "$probe_hash" "$widget_origin" "$site_origin" <<'PY'
import json, sys, urllib.request, urllib.error
out, host, tenant, widget, site = sys.argv[1:]
notes, results = [], {}
for who, origin in (("site", site), ("widget", widget)):
    req = urllib.request.Request(f"{host}/forms?action=get_config&t={tenant}", headers={"Origin": origin})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, headers, body = r.status, dict(r.headers), r.read()[:200].decode()
    except urllib.error.HTTPError as e:
        status, headers, body = e.code, dict(e.headers), e.read()[:200].decode()
    results[who] = {"origin": origin, "status": status, "acao": headers.get("access-control-allow-origin"), "body": body if status != 200 else "(config)"}
w = results["widget"]
if w["status"] != 200:
    notes.append(
        f"backend: GET /forms?action=get_config&t={tenant} with Origin {widget} (the widget's own origin, in WIDGET_ORIGINS; "
        f"the iframe's ConfigProvider asks from there) answers {w['status']} {w['body']!r}, no Access-Control-Allow-Origin, "
        f"when the tenant's allowed_origins is [{site}]: the widget then runs without its config "
        f"(no title, welcome message or chips; a form starts only from the fields a form-trigger CTA carries)")
json.dump({"results": results, "notes": notes}, open(out, "w"), indent=1)
for who, r in results.items():
    print(f"[real-widget] probe: widget config from the {who}'s origin {r['origin']}: HTTP {r['status']}")
PY

# --- Drive the widget -------------------------------------------------------------
python3 - "$work/run.json" <<PY
import json, sys
json.dump({
    "playwright_dir": "$driver_dir",
    "chromium": "$chromium",
    "chromium_args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    "site_url": "$site_origin/",
    "host_url": "$host_url",
    "tenant_config": "$work/tenant/config.json",
    "form_id": "volunteer_application",
    "answers": "$here/answers.json",
    "chip_label": "Volunteer with us",
    "cta_label": "Start the volunteer application",
    "trigger_phrase": "I want to volunteer",
    "screenshot": "$screenshot",
    "out": "$work/result.json",
    "timeout_s": 240,
}, open(sys.argv[1], "w"), indent=1)
PY
say "driving the widget in Chromium: $site_origin/ (widget from $widget_origin)"
drive_status=0
timeout 300 node "$here/drive.mjs" "$work/run.json" || drive_status=$?
[ -f "$work/result.json" ] || die "the driver wrote no result (exit $drive_status)"

# --- Check the stack --------------------------------------------------------------
verify_status=0
timeout 120 python3 "$here/verify.py" --result "$work/result.json" --tenant-config "$work/tenant/config.json" \
  --answers "$here/answers.json" --form-id volunteer_application --table "$table" --aws "$aws_cli" \
  --host-url "$host_url" --wait 30 --probe "$work/probe.json" --summary "$work/summary.json" || verify_status=$?
say "widget commit $commit; details: $work/result.json, $work/summary.json; stack log $work/stack.log"
[ "$drive_status" = 0 ] && [ "$verify_status" = 0 ] || exit 1
