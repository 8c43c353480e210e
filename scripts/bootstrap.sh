#!/usr/bin/env bash
# Install what mosbridge needs on a Debian machine: system packages, then a virtualenv with the
# project. Idempotent; both README commands and CI start with it.
#   scripts/bootstrap.sh          # run the bridge: libopus and the package
#   scripts/bootstrap.sh --dev    # also the tests' and benchmarks' tools and the dev extras
#   PYTHON=python3.13 VENV=.venv313 scripts/bootstrap.sh --dev   # another interpreter, another venv
set -euo pipefail
cd "$(dirname "$0")/.."

DEV=0
for arg in "$@"; do
    case "$arg" in
        --dev) DEV=1 ;;
        -h|--help) sed -n '2,6s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "bootstrap: unknown argument $arg (try --dev)" >&2; exit 2 ;;
    esac
done

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
# libopus0: the Opus codec (opuslib loads it at run time); all that `mosbridge serve` needs.
APT_PACKAGES=(libopus0)
if ((DEV)); then
    # For tests and benchmarks: opus-tools (an independent Opus decoder), espeak-ng and sox
    # (speech made offline), prometheus (promtool and a real server for the alerting rules),
    # tshark (Wireshark's RTP stream analysis, the independent check of jitter and loss), chromium
    # and chromium-driver (the dashboard in a headless browser), fonts-dejavu-core (text in its
    # screenshots), postgresql (initdb and pg_ctl: the tests start a throwaway cluster of their own),
    # podman, runc and debootstrap (the container image built and run by tests/deploy/test_image.py),
    # nodejs (the load rig of benchmarks/node_rig; its npm packages are installed below).
    APT_PACKAGES+=(opus-tools espeak-ng sox prometheus tshark chromium chromium-driver fonts-dejavu-core postgresql
                   podman runc debootstrap nodejs)
    # npm ships inside some nodejs builds (NodeSource's) and conflicts with Debian's npm package there
    command -v npm >/dev/null 2>&1 || APT_PACKAGES+=(npm)
fi

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
# Reinstall only when pyproject.toml changed since the last install into this venv, or when --dev
# asks for more than the last install put there. The stamp says what is installed: runtime or dev
# (a venv once installed with --dev stays so, and is kept up to date as one).
stamp="$VENV/.mosbridge-installed"
have=$(cat "$stamp" 2>/dev/null || true)
want=$([ "$DEV" -eq 1 ] || [ "$have" = dev ] && echo dev || echo runtime)
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$want" != "$have" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
    # Editable, so a checkout's edits run without a reinstall. Setuptools' note on every editable
    # install ("Editable installation. Please be careful with folders...") is information, not a
    # problem: it alone is filtered; any other build warning still prints.
    extras=$([ "$want" = dev ] && echo "[dev]" || true)
    PYTHONWARNINGS="ignore:Editable installation" \
        "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".$extras"
    echo "$want" > "$stamp"
fi

# The Node load rig's packages (ws), from its lock file, when the lock is newer than the install.
rig=benchmarks/node_rig
if ((DEV)) && { [ ! -d "$rig/node_modules" ] || [ "$rig/package-lock.json" -nt "$rig/node_modules" ]; }; then
    npm ci --prefix "$rig" --no-audit --no-fund --loglevel=error >/dev/null
    touch "$rig/node_modules"
fi
