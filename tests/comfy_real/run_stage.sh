#!/usr/bin/env bash
# The real-ComfyUI stage (.ci/run runs it after the unit tests): builds the harness venv once
# (../shared/harness/comfyui/setup), installs Debian's chromium for the frontend tests, then runs
# tests/comfy_real with the harness Python; the tests start and stop the server themselves.
# Skips (exit 0, saying why) only where the harness is absent or its venv cannot be built.
set -uo pipefail
cd "$(dirname "$0")/../.."
harness=${ACEFORGE_COMFY_HARNESS:-$(cd .. && pwd)/shared/harness/comfyui}
if [ ! -x "$harness/setup" ] || [ ! -x "$harness/start" ]; then
  echo "real-ComfyUI stage skipped: no harness at $harness"; exit 0
fi
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  { timeout 600 apt-get update -qq && timeout 600 apt-get install -y -qq chromium; } >/dev/null 2>&1 \
    || echo "note: chromium could not be installed; the frontend tests will skip"
fi
if ! venv=$(timeout 1200 "$harness/setup" | tail -1) || [ ! -x "$venv/bin/python" ]; then
  echo "real-ComfyUI stage skipped: the harness venv could not be built ($harness/setup)"; exit 0
fi
# the pack's own dependencies first (the server start installs them too, but some tests import them
# before any server runs), then pytest
"$venv/bin/python" -m pip install --quiet -e . "pytest>=8,<10" 2>&1 | grep -v "^WARNING: Location" || true
export ACEFORGE_COMFY_HARNESS="$harness"
exec timeout 1500 "$venv/bin/python" -m pytest -p no:cacheprovider tests/comfy_real "$@"
