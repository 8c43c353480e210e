#!/usr/bin/env bash
# Build the mosbridge image with podman, no Docker engine and no Docker Hub: the base of
# deploy/Dockerfile (python:3.11-slim-bookworm) is replaced by an equivalent made here from Debian's
# packages (debootstrap: bookworm, Debian's python3 3.11 in a venv on PATH as `python` and `pip`).
#
#   deploy/build-offline.sh [--tag IMAGE] [--rebuild-base]
#
# Run as root from anywhere; needs podman and debootstrap (scripts/bootstrap.sh installs them).
# The base (localhost/mosbridge-base:bookworm) is made once and reused until --rebuild-base; the
# image's own layers are cached by podman as usual.
#
# Environment (all optional):
#   DEBIAN_MIRROR           default http://deb.debian.org/debian (the base's apt sources point here too)
#   DEBIAN_SECURITY_MIRROR  default http://deb.debian.org/debian-security
#   PIP_INDEX_URL           a package index for the builder stage (default: pip's own, PyPI)
#   PIP_CERT                a CA bundle pip needs to trust that index (default: pip's configured
#                           global.cert, if any). Mounted read-only for the build, never copied in.
#   MOSBRIDGE_PODMAN_OPTS   podman's global options, word-split (default none: podman's own storage,
#                           overlay where the kernel allows it, else vfs). E.g. "--storage-driver vfs",
#                           or "--root DIR --runroot DIR" for a storage of its own (tests/deploy/test_image.py)
#   MOSBRIDGE_BUILD_ISOLATION podman build isolation, default chroot (RUN steps need no OCI runtime,
#                           cgroups or user namespaces)
#
# Run the result (see deploy/README.md for why runc and explicit ulimits):
#   podman run --rm --runtime runc --network host \
#     --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
#     -e MOSBRIDGE_VALIDATE_TWILIO_SIGNATURE=0 localhost/mosbridge:dev
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TAG=localhost/mosbridge:dev
BASE=localhost/mosbridge-base:bookworm
REBUILD_BASE=0
while [ $# -gt 0 ]; do
    case "$1" in
        --tag) TAG=$2; shift 2 ;;
        --rebuild-base) REBUILD_BASE=1; shift ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "build-offline.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEBIAN_SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# shellcheck disable=SC2206
PODMAN=(podman ${MOSBRIDGE_PODMAN_OPTS:-})

die() { echo "build-offline.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"
for tool in podman debootstrap chroot tar; do
    command -v "$tool" >/dev/null || die "$tool not found: install podman and debootstrap (scripts/bootstrap.sh)"
done

build_base() {
    local rootfs
    rootfs=$(mktemp -d /var/tmp/mosbridge-rootfs.XXXXXX)
    # shellcheck disable=SC2064
    trap "rm -rf '$rootfs'" EXIT
    echo "== base: debootstrap bookworm from $DEBIAN_MIRROR"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$rootfs" "$DEBIAN_MIRROR"
    # The sources python:3.11-slim-bookworm has: the release, its updates and the security suite.
    rm -f "$rootfs/etc/apt/sources.list"
    cat > "$rootfs/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    chroot "$rootfs" apt-get update -q
    DEBIAN_FRONTEND=noninteractive chroot "$rootfs" apt-get -y -q upgrade
    chroot "$rootfs" apt-get clean
    rm -rf "$rootfs"/var/lib/apt/lists/*
    # Debian's pip refuses to install into the system Python (PEP 668): a venv on PATH stands in for
    # the official image's /usr/local Python, with `python` and `pip` as the Dockerfile expects.
    chroot "$rootfs" /usr/bin/python3 -m venv /opt/python
    echo "== base: import as $BASE"
    tar -C "$rootfs" --numeric-owner -cf - . | "${PODMAN[@]}" import \
        --change 'ENV PATH=/opt/python/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'LABEL org.opencontainers.image.description="Debian bookworm, python3 3.11 in /opt/python (mosbridge build base)"' \
        --change 'CMD ["python"]' \
        - "$BASE"
    rm -rf "$rootfs"
    trap - EXIT
}

if [ "$REBUILD_BASE" = 1 ] || ! "${PODMAN[@]}" image exists "$BASE"; then
    build_base
else
    echo "== base: $BASE exists (--rebuild-base to make it anew)"
fi

args=(--format docker --isolation "${MOSBRIDGE_BUILD_ISOLATION:-chroot}" --network host
      --build-arg "BASE_IMAGE=$BASE" -f "$ROOT/deploy/Dockerfile" -t "$TAG")
if [ -z "${PIP_INDEX_URL:-}" ]; then
    PIP_INDEX_URL=$(python3 -m pip config get global.index-url 2>/dev/null || true)
fi
[ -z "$PIP_INDEX_URL" ] || args+=(--build-arg "PIP_INDEX_URL=$PIP_INDEX_URL")
if [ -z "${PIP_CERT:-}" ]; then
    PIP_CERT=$(python3 -m pip config get global.cert 2>/dev/null || true)
fi
if [ -n "$PIP_CERT" ]; then
    [ -r "$PIP_CERT" ] || die "PIP_CERT=$PIP_CERT is not a readable file"
    args+=(--build-arg PIP_CERT=/run/mosbridge-build-ca.crt -v "$PIP_CERT:/run/mosbridge-build-ca.crt:ro")
fi
echo "== image: $TAG"
"${PODMAN[@]}" build "${args[@]}" "$ROOT"
