#!/usr/bin/env bash
# Builds gatehouse's container image from the top-level Containerfile, offline (FROM scratch: nothing is
# pulled), then smoke-tests it with podman: it must run as a non-root numeric user on a read-only root
# filesystem, answer /live and /ready, and hold no shell.
#
#   scripts/image.sh [--tag NAME:TAG] [--binary PATH] [--no-smoke]
#   scripts/image.sh --context DIR [--binary PATH]     # only prepare the build context
#
# --binary   a gatehouse binary already built (default: `cargo build --release --locked` builds one)
# --tag      the image's name (default: localhost/gatehouse:<version from Cargo.toml>)
# --context  write the build context (rootfs/ + Containerfile) to DIR and stop: for `docker build`,
#            `buildah bud` or kaniko in one's own CI.
#
# buildah and podman come from Debian (scripts/deploy-env.sh installs them); their storage and runtime
# settings are the project's own (target/deploy-env/*.conf) unless CONTAINERS_CONF and
# CONTAINERS_STORAGE_CONF are already set.
set -euo pipefail

SCRIPT_NAME=image
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VERSION="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n 1)"
[[ -n "$VERSION" ]] || die "cannot read the version from Cargo.toml"
TAG="localhost/gatehouse:$VERSION"
BINARY=""
CONTEXT=""
SMOKE=1
while [[ $# -gt 0 ]]; do
    case "$1" in
    --tag) TAG="${2:?--tag needs a value}"; shift 2 ;;
    --binary) BINARY="${2:?--binary needs a value}"; shift 2 ;;
    --context) CONTEXT="${2:?--context needs a value}"; shift 2 ;;
    --no-smoke) SMOKE=0; shift ;;
    *) die "unknown argument $1 (see the comment at the top of scripts/image.sh)" ;;
    esac
done

if [[ -z "$BINARY" ]]; then
    say "building the release binary"
    (cd "$ROOT" && cargo build --release --locked --bin gatehouse >&2) || die "cargo build --release failed"
    BINARY="$ROOT/target/release/gatehouse"
fi
[[ -x "$BINARY" ]] || die "$BINARY is not an executable"

# --- The build context ------------------------------------------------------------------------------------
KEEP_CONTEXT=1
if [[ -z "$CONTEXT" ]]; then
    CONTEXT="$(mktemp -d "${TMPDIR:-/tmp}/gatehouse-image.XXXXXX")"
    KEEP_CONTEXT=0
fi
cleanup() {
    if [[ "$KEEP_CONTEXT" -eq 0 ]]; then rm -rf "$CONTEXT"; fi
    if [[ -n "${SMOKE_NAME:-}" ]]; then podman rm -f "$SMOKE_NAME" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT
rm -rf "$CONTEXT/rootfs"
mkdir -p "$CONTEXT/rootfs"
bash "$ROOT/scripts/rootfs.sh" "$BINARY" "$CONTEXT/rootfs" gatehouse
cp "$ROOT/Containerfile" "$CONTEXT/Containerfile"
if [[ "$KEEP_CONTEXT" -eq 1 ]]; then
    say "build context ready in $CONTEXT"
    exit 0
fi

# --- Build ------------------------------------------------------------------------------------------------
if [[ -z "${CONTAINERS_CONF:-}" || -z "${CONTAINERS_STORAGE_CONF:-}" ]]; then
    eval "$(bash "$ROOT/scripts/deploy-env.sh" | grep '^CONTAINERS_')"
    export CONTAINERS_CONF CONTAINERS_STORAGE_CONF
fi
command -v buildah >/dev/null 2>&1 || die "buildah is missing: run scripts/deploy-env.sh"
REVISION="$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
SOURCE="${GATEHOUSE_IMAGE_SOURCE:-$(git -C "$ROOT" config --get remote.origin.url 2>/dev/null || echo unknown)}"
say "building $TAG"
# The image this tag named before would be left behind, nameless, taking space: remove it first.
buildah rmi "$TAG" >/dev/null 2>&1 || true
buildah bud --quiet --layers=false --format oci \
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "SOURCE=$SOURCE" \
    --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -f "$CONTEXT/Containerfile" -t "$TAG" "$CONTEXT" >&2 || die "buildah bud failed"

[[ "$SMOKE" -eq 1 ]] || exit 0

# --- Smoke test -------------------------------------------------------------------------------------------
command -v podman >/dev/null 2>&1 || die "podman is missing: run scripts/deploy-env.sh"
USER_FIELD="$(podman image inspect --format '{{.Config.User}}' "$TAG")"
[[ "$USER_FIELD" =~ ^[1-9][0-9]*(:[0-9]+)?$ ]] || die "the image's user is '$USER_FIELD', not a non-root number"
if podman run --rm --network none --entrypoint /bin/sh "$TAG" -c true >/dev/null 2>&1; then
    die "the image holds a shell"
fi

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
GRPC_PORT="$(free_port)"
HTTP_PORT="$(free_port)"
SMOKE_NAME="gatehouse-smoke-$$"
podman run -d --name "$SMOKE_NAME" --read-only --network host \
    --cap-drop ALL --security-opt no-new-privileges \
    -e "GATEHOUSE_LISTEN=127.0.0.1:$GRPC_PORT" -e "GATEHOUSE_HTTP_LISTEN=127.0.0.1:$HTTP_PORT" \
    "$TAG" >/dev/null || die "podman run failed"
ready=0
for _ in $(seq 1 100); do
    if curl -fsS "http://127.0.0.1:$HTTP_PORT/ready" >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.1
done
if [[ "$ready" -ne 1 ]]; then
    podman logs "$SMOKE_NAME" >&2 || true
    die "the container did not become ready on 127.0.0.1:$HTTP_PORT"
fi
curl -fsS "http://127.0.0.1:$HTTP_PORT/live" >/dev/null || die "/live did not answer"
RUNNING_USER="$(podman top "$SMOKE_NAME" huser user 2>/dev/null | tail -n 1 | tr -s ' ')"
podman stop -t 10 "$SMOKE_NAME" >/dev/null
say "$TAG runs as user $USER_FIELD on a read-only root filesystem and answers /live and /ready ($RUNNING_USER)"
