#!/usr/bin/env bash
# Installs the Python tools the local stack and the checks use (moto in server
# mode, cfn-lint, the AWS CLI) into .venv, pinned by tools/requirements.txt.
# Re-runs pip only when the requirements change.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
requirements="$root/tools/requirements.txt"
stamp="$venv/.requirements.sha256"
wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "bootstrap: creating $venv" >&2
  python3 -m venv "$venv"
fi
if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
  echo "bootstrap: installing $(grep -cv '^#' "$requirements") pinned Python tools into .venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
  echo "$wanted" > "$stamp"
fi
