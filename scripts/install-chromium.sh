#!/usr/bin/env bash
# Chromium for the test that looks at the Temporal Web UI (driven by playwright-core).
# Uses CHROMIUM_PATH or /usr/bin/chromium when present; otherwise installs Debian's
# package (as root, or through sudo). Safe to run again.
set -euo pipefail

path="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [ -x "$path" ]; then
  echo "install-chromium: $("$path" --version 2>/dev/null || echo "$path") is ready"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-chromium: no Chromium at $path and no apt-get here: install Chromium and set CHROMIUM_PATH" >&2
  exit 1
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "install-chromium: installing Debian's chromium package"
$sudo apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  $sudo apt-get update -qq
  $sudo apt-get install -y --no-install-recommends chromium >/dev/null
}
echo "install-chromium: $(/usr/bin/chromium --version) is ready"
