#!/usr/bin/env bash
# Build the local stand-in for the public base image `python:3.11-slim-bookworm`, from Debian's own
# packages, because no container registry is reachable here. It is cached: the image tag carries a
# hash of this script, so an unchanged script never rebuilds and a changed one always does.
#
# What the Dockerfile may rely on, and the official image offers (so this one offers it too):
#   python / python3 / pip / pip3 on PATH in /usr/local/bin, `python -m venv` with pip inside,
#   pip allowed to install outside a venv (no EXTERNALLY-MANAGED marker), apt sources for
#   bookworm + updates + security, ca-certificates, LANG=C.UTF-8, CMD ["python3"].
# The Python is Debian's 3.11 (the official image builds 3.11.x from source into /usr/local).
# One addition for this machine only: its egress to PyPI goes through a TLS proxy whose CA the
# host trusts, so the CAs in the host bundle that Debian's bundle lacks are added (and pip is told
# to use the system bundle); without them `pip install` inside the build fails certificate checks.
#
# Usage: image/build_base.sh            prints the image reference on the last line of stdout
#        FORCE=1 image/build_base.sh    rebuilds even when cached
set -euo pipefail

HOST_CA_BUNDLE=${HOST_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
# The cache key covers this script and the CAs it copies from the host.
SCRIPT_HASH=$(cat "$0" "$HOST_CA_BUNDLE" 2>/dev/null | sha256sum | cut -c1-12)
IMAGE="localhost/ezspeech-base:py311-bookworm-${SCRIPT_HASH}"
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DEB_CACHE=${DEBOOTSTRAP_CACHE:-/var/cache/ezspeech-debootstrap}

log() { echo ">> [base] $*" >&2; }

if [[ -z "${FORCE:-}" ]] && podman image exists "$IMAGE"; then
	log "cached: $IMAGE"
	echo "$IMAGE"
	exit 0
fi

for tool in debootstrap podman tar; do
	command -v "$tool" >/dev/null || { echo "image/build_base.sh: '$tool' is not installed" >&2; exit 2; }
done

ROOTFS=$(mktemp -d /var/tmp/ezspeech-base-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
mkdir -p "$DEB_CACHE"

start=$(date +%s)
log "debootstrap bookworm (minbase + python3.11) into $ROOTFS"
# minbase: essential packages + apt only; Depends of the included packages are resolved,
# Recommends (build-essential, python3-dev for pip) are not, as in the slim image.
debootstrap --variant=minbase --cache-dir="$DEB_CACHE" \
	--include=ca-certificates,python3,python3-venv,python3-pip,netbase \
	bookworm "$ROOTFS" "$MIRROR" >&2

log "configuring the root filesystem like python:3.11-slim-bookworm"
rm -f "$ROOTFS/etc/apt/sources.list"
cat >"$ROOTFS/etc/apt/sources.list.d/debian.sources" <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
# The host's extra CAs (see the top of this file), one file each, as update-ca-certificates wants.
python3 - "$HOST_CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt" "$ROOTFS/usr/local/share/ca-certificates" <<'PY' >&2
import re, sys
from pathlib import Path
pem = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
host = Path(sys.argv[1]).read_text() if Path(sys.argv[1]).is_file() else ""
known = set(pem.findall(Path(sys.argv[2]).read_text()))
extra = [cert for cert in pem.findall(host) if cert not in known]
for n, cert in enumerate(extra):
    Path(sys.argv[3], f"host-egress-{n}.crt").write_text(cert + "\n")
print(f">> [base] {len(extra)} CA certificate(s) from the host added")
PY
chroot "$ROOTFS" update-ca-certificates >&2
printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$ROOTFS/etc/pip.conf"
# The official image's Python is not the distribution's, so pip may install anywhere.
rm -f "$ROOTFS"/usr/lib/python3.*/EXTERNALLY-MANAGED
for name in python python3; do ln -sf /usr/bin/python3.11 "$ROOTFS/usr/local/bin/$name"; done
for name in pip pip3; do ln -sf /usr/bin/pip3 "$ROOTFS/usr/local/bin/$name"; done
# Same trimming the slim images do: no package lists, no downloaded .debs, no docs.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/archives/*.deb \
	"$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/*
# The rootfs must work before it is imported: fail here, not inside the project's build.
chroot "$ROOTFS" /usr/local/bin/python -c "import venv, ensurepip, ssl, sqlite3; print('python ok')" >&2
chroot "$ROOTFS" /usr/local/bin/pip --version >&2

log "podman import as $IMAGE"
tar --numeric-owner -C "$ROOTFS" -c . | podman import \
	--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
	--change 'ENV LANG=C.UTF-8' \
	--change 'ENV PYTHON_VERSION=3.11' \
	--change 'CMD ["python3"]' \
	--message "debootstrap bookworm + Debian python3.11 (stand-in for python:3.11-slim-bookworm)" \
	- "$IMAGE" >&2
# Older tags were built by older versions of this script: drop them so they do not pile up.
podman images --format '{{.Repository}}:{{.Tag}}' | grep '^localhost/ezspeech-base:' | grep -vxF "$IMAGE" |
	xargs -r podman rmi >&2 || true
log "built in $(($(date +%s) - start)) s, size $(podman image inspect --format '{{.Size}}' "$IMAGE") bytes"
echo "$IMAGE"
