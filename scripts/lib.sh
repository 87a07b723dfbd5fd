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

# --- Environments under target/: a lock, a stamp, a Python virtualenv, Node ------------------------------
# Each *-env.sh script installs pinned tools into its own folder under target/. It takes the folder's
# lock (so processes installing at once take turns), and returns at once when the folder's stamp holds
# the hash of its inputs; it writes the stamp last, so a half-finished install is redone.

# Takes the lock of the environment folder DIR (created if missing) for the rest of the script, on file
# descriptor 9; waits up to SECONDS (default 1200) for another install to finish.
lock_env() {
    local dir="$1" seconds="${2:-1200}"
    command -v flock >/dev/null 2>&1 || apt_install util-linux
    mkdir -p "$dir"
    exec 9>"$dir/.lock"
    flock -w "$seconds" 9 || die "timed out waiting for $dir/.lock (another install still running?)"
}

# The SHA-256 of the files given, one after the other: what an environment's stamp holds.
inputs_hash() {
    command -v sha256sum >/dev/null 2>&1 || apt_install coreutils
    cat "$@" | sha256sum | cut -d' ' -f1
}

# Whether the environment folder DIR was finished for the inputs hashed as HASH.
stamped() { [[ -f "$1/stamp" && "$(cat "$1/stamp")" == "$2" ]]; }

# Marks the environment folder DIR finished for the inputs hashed as HASH.
stamp_env() { printf '%s\n' "$2" >"$1/stamp"; }

# Makes the virtualenv VENV unless a working one is there, with a python3 of at least 3.MINOR that can
# create virtualenvs: PYTHON if given (an override such as $GATEHOUSE_SDK_PYTHON), else python3 on PATH,
# else Debian's, installing python3 and python3-venv when needed.
make_venv() {
    local venv="$1" minor="$2" python="${3:-python3}"
    can_venv() {
        command -v "$1" >/dev/null 2>&1 &&
            "$1" -c "import sys, venv, ensurepip; sys.exit(0 if sys.version_info >= (3, $minor) else 1)" >/dev/null 2>&1
    }
    if ! can_venv "$python"; then
        python=/usr/bin/python3
        can_venv "$python" || apt_install python3 python3-venv
        can_venv "$python" || die "$python (3.$minor or newer) cannot create virtualenvs even after installing python3-venv"
    fi
    "$venv/bin/python" -c '' >/dev/null 2>&1 && return 0
    say "creating the virtualenv $venv with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 || die "'$python -m venv $venv' failed"
}

# pip install ARGS... into the virtualenv VENV, quietly; dies naming what failed.
venv_pip() {
    local venv="$1"
    shift
    "$venv/bin/python" -m pip install --disable-pip-version-check --no-input -q "$@" >&2 ||
        die "pip install $* failed (is PyPI reachable?)"
}

# Makes sure node (18 or newer) and npm are on PATH, installing Debian's when missing.
need_node() {
    local missing=()
    command -v node >/dev/null 2>&1 || missing+=(nodejs)
    command -v npm >/dev/null 2>&1 || missing+=(npm)
    [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
    command -v node >/dev/null 2>&1 || die "node is not on PATH even after installing nodejs"
    command -v npm >/dev/null 2>&1 || die "npm is not on PATH even after installing npm"
    [[ "$(node -p 'process.versions.node.split(".")[0]')" -ge 18 ]] ||
        die "node 18 or newer is needed, found $(node --version)"
}

# `npm ci` of DIR's package.json and package-lock.json, without install scripts; dies naming DIR.
npm_ci() {
    (cd "$1" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error "${@:2}" >&2) ||
        die "npm ci in $1 failed (is the npm registry reachable?)"
}
