#!/usr/bin/env bash
# Installs the Python tools the local stack and the checks use (moto in server
# mode, cfn-lint, the AWS CLI, cargo-lambda) into .venv, pinned by
# tools/requirements.txt, and the AWS SAM CLI into .venv-sam (kept apart so
# its pinned dependencies cannot move moto's), pinned by tools/sam-requirements.txt.
# Re-runs pip only when a requirements file changes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
install() {
  local venv="$1" requirements="$2"
  local stamp="$venv/.requirements.sha256" wanted
  wanted="$(sha256sum "$requirements" | cut -d' ' -f1)"
  if [[ ! -x "$venv/bin/python" ]]; then
    echo "bootstrap: creating $venv" >&2
    python3 -m venv "$venv"
  fi
  if [[ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]]; then
    echo "bootstrap: installing $(grep -cv '^#' "$requirements") pinned Python tools into $venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
    echo "$wanted" > "$stamp"
  fi
}

install "$root/.venv" "$root/tools/requirements.txt"
install "$root/.venv-sam" "$root/tools/sam-requirements.txt"
