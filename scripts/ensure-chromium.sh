#!/bin/sh
# Make Debian's headless-capable Chromium available at /usr/bin/chromium for the BPMN rendering
# checks (tests/bpmn_tools.py drives it with Playwright for Python through `executable_path`, so
# Playwright's own browser download, which cannot reach its CDN here, is never needed).
# Idempotent: does nothing when /usr/bin/chromium already runs, and only runs `apt-get update`
# when an install is actually needed. Prints the binary path on stdout as its last line.
set -eu

CHROMIUM="/usr/bin/chromium"

have_chromium() {
    [ -x "$CHROMIUM" ] && "$CHROMIUM" --version >/dev/null 2>&1
}

if have_chromium; then
    echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null) present" >&2
    echo "$CHROMIUM"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: no apt-get; install Chromium at $CHROMIUM by hand" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq chromium >/dev/null

have_chromium || { echo "ensure-chromium: install finished but $CHROMIUM does not run" >&2; exit 1; }
echo "ensure-chromium: $("$CHROMIUM" --version 2>/dev/null) installed" >&2
echo "$CHROMIUM"
