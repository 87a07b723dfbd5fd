#!/usr/bin/env bash
# Makes sure nginx, with its auth_request module, is installed, and prints the nginx binary's path on
# stdout (messages go to stderr). The nginx end-to-end test (tests/nginx_e2e.rs) runs it first and
# starts that binary with examples/nginx/nginx.conf in a temporary prefix.
#
# Idempotent and safe to run from several processes at once: when nginx is there it only checks and
# prints; otherwise Debian's nginx package is installed with apt-get (as root, directly or through
# passwordless sudo) under a lock. Debian's package would start nginx on port 80 as it installs: a
# temporary policy-rc.d forbids that for the install (a policy-rc.d already in place is left alone),
# and an nginx the install started anyway is stopped. Needs Debian's package archive.
set -euo pipefail

say() { printf 'nginx-env: %s\n' "$*" >&2; }
die() {
    printf 'nginx-env: error: %s\n' "$*" >&2
    exit 1
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENV_DIR="$ROOT/target/nginx-env"
LOCK="$ENV_DIR/.lock"
POLICY_RC=/usr/sbin/policy-rc.d

# The nginx on PATH, else Debian's /usr/sbin/nginx (not on a non-root user's PATH); empty if none.
find_nginx() {
    local found
    found="$(command -v nginx 2>/dev/null || true)"
    if [[ -n "$found" && -x "$found" ]]; then
        printf '%s\n' "$found"
    elif [[ -x /usr/sbin/nginx ]]; then
        printf '%s\n' /usr/sbin/nginx
    fi
}

has_auth_request() {
    "$1" -V 2>&1 | grep -q http_auth_request_module
}

# Prints the binary's path if it is usable, and exits.
finish() {
    local nginx="$1"
    has_auth_request "$nginx" ||
        die "$nginx was built without the auth_request module (http_auth_request_module): install Debian's nginx package"
    say "using $("$nginx" -v 2>&1 | sed 's/^nginx version: //') at $nginx"
    printf '%s\n' "$nginx"
    exit 0
}

NGINX="$(find_nginx)"
if [[ -n "$NGINX" ]]; then
    finish "$NGINX"
fi

# --- Install ----------------------------------------------------------------------------------------------
command -v apt-get >/dev/null 2>&1 ||
    die "nginx is missing and apt-get is not available: install nginx (with http_auth_request_module) yourself"
SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        die "nginx is missing, and installing it needs root: run 'apt-get install nginx' as root"
    fi
fi
command -v flock >/dev/null 2>&1 || die "flock (util-linux) is missing"

mkdir -p "$ENV_DIR"
exec 9>"$LOCK"
flock -w 1200 9 || die "timed out waiting for $LOCK (another install still running?)"

# Another process may have installed it while this one waited for the lock.
NGINX="$(find_nginx)"
if [[ -n "$NGINX" ]]; then
    finish "$NGINX"
fi

# Forbid service starts during the install, unless a policy is already in place (Docker images ship one).
OWN_POLICY=0
remove_policy() {
    if [[ "$OWN_POLICY" -eq 1 ]]; then
        "${SUDO[@]}" rm -f "$POLICY_RC" || say "could not remove the temporary $POLICY_RC: remove it yourself"
        OWN_POLICY=0
    fi
}
trap remove_policy EXIT
if [[ ! -e "$POLICY_RC" ]]; then
    printf '#!/bin/sh\n# Temporary, from scripts/nginx-env.sh: no service starts while nginx installs.\nexit 101\n' |
        "${SUDO[@]}" tee "$POLICY_RC" >/dev/null || die "cannot write $POLICY_RC"
    OWN_POLICY=1
    "${SUDO[@]}" chmod 0755 "$POLICY_RC" || die "cannot make $POLICY_RC executable"
fi
HAD_PID=0
[[ -e /run/nginx.pid ]] && HAD_PID=1

apt() {
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 "$@" >&2
}
say "installing Debian's nginx package with apt-get"
apt update -qq || die "apt-get update failed"
apt install -y -qq --no-install-recommends nginx || die "apt-get install nginx failed"
remove_policy

# An nginx the install started despite the policy (its pid file appeared) holds port 80: stop it.
if [[ "$HAD_PID" -eq 0 && -s /run/nginx.pid ]]; then
    say "stopping the nginx the package started"
    "${SUDO[@]}" /usr/sbin/nginx -s stop >&2 || say "could not stop it: run 'nginx -s stop' yourself"
fi

NGINX="$(find_nginx)"
[[ -n "$NGINX" ]] || die "nginx is not found (PATH or /usr/sbin/nginx) even after installing it"
finish "$NGINX"
