#!/usr/bin/env bash
# Install what mosbridge needs on a Debian machine: system packages, then a virtualenv with the
# project and its dev tools. Idempotent; both README commands and CI start with it.
#   PYTHON=python3.13 VENV=.venv313 scripts/bootstrap.sh   # another interpreter, another venv
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# libopus0: the Opus codec (opuslib loads it at run time). The rest are for tests and
# benchmarks: opus-tools (an independent Opus decoder), espeak-ng and sox (speech made offline),
# prometheus (promtool and a real server for the alerting rules), tshark (Wireshark's RTP stream
# analysis, the independent check of jitter and loss), chromium and chromium-driver
# (the dashboard in a headless browser), fonts-dejavu-core (text in its screenshots).
APT_PACKAGES=(libopus0 opus-tools espeak-ng sox prometheus tshark chromium chromium-driver fonts-dejavu-core podman runc debootstrap)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    echo "bootstrap: installing Debian packages: ${missing[*]}" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
# Reinstall only when pyproject.toml changed since the last install into this venv.
stamp="$VENV/.mosbridge-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e ".[dev]"
    touch "$stamp"
fi
