# Shared by the scripts in this folder: messages, errors and installing Debian's packages.
# Source it after setting SCRIPT_NAME (the prefix of every message):
#   SCRIPT_NAME=deploy-env; source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

say() { printf '%s: %s\n' "$SCRIPT_NAME" "$*" >&2; }
die() {
    printf '%s: error: %s\n' "$SCRIPT_NAME" "$*" >&2
    exit 1
}

# Installs Debian packages with apt-get, as root directly or through passwordless sudo.
apt_install() {
    command -v apt-get >/dev/null 2>&1 ||
        die "$* missing and apt-get is not available: install $* yourself"
    local sudo=()
    if [[ "$(id -u)" -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
            sudo=(sudo -n)
        else
            die "$* missing, and installing it needs root: run 'apt-get install $*' as root"
        fi
    fi
    say "installing with apt-get: $*"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -qq >&2 ||
        die "apt-get update failed"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "$@" >&2 || die "apt-get install $* failed"
}
