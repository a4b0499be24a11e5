#!/usr/bin/env bash
# Assembles the kubefim container image where there is no Docker daemon and no registry: the
# image the Dockerfile describes (both binaries at /kubefim-agent and /kubefim-operator, the
# runtime libraries they link, user 65532, entrypoint /kubefim-agent), as an OCI archive, from
# the release build and Debian's packages, with umoci (layout, layer, config) and skopeo (the
# archive). node-agent/tests/image.rs keeps it and the Dockerfile in agreement.
#
#   scripts/image.sh                      # release build, then target/image/kubefim-<version>.oci.tar
#   KUBEFIM_BINARIES=dir scripts/image.sh # binaries already built (kubefim-agent, kubefim-operator)
#
# Also: KUBEFIM_IMAGE_NAME (default localhost/kubefim/kubefim), KUBEFIM_IMAGE_TAG (default the
# chart's appVersion), KUBEFIM_IMAGE_OUT (default target/image). The last line printed is the
# archive's path. Loading it: docs/operations.md#the-image-without-a-registry.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

name=${KUBEFIM_IMAGE_NAME:-localhost/kubefim/kubefim}
tag=${KUBEFIM_IMAGE_TAG:-$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/kubefim/Chart.yaml)}
out=${KUBEFIM_IMAGE_OUT:-$repo/target/image}

need=()
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
if [ ${#need[@]} -gt 0 ]; then
  echo "image.sh: apt-get install ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bins=${KUBEFIM_BINARIES:-}
if [ -z "$bins" ]; then
  cargo build --release --locked -q -p kubefim-agent -p kubefim-operator
  bins=$repo/target/release
fi
for binary in kubefim-agent kubefim-operator; do
  [ -x "$bins/$binary" ] || { echo "image.sh: $bins/$binary is not an executable; build it or set KUBEFIM_BINARIES" >&2; exit 2; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs
mkdir -p "$rootfs" "$work/debs"

# The runtime libraries the binaries link (glibc and libgcc_s), from Debian's own packages, as
# the distroless cc base carries them. Nothing else: no shell, no package manager.
(cd "$work/debs" && apt-get download -qq libc6 libgcc-s1 >/dev/null 2>&1) || {
  apt-get update -qq >/dev/null
  (cd "$work/debs" && apt-get download -qq libc6 libgcc-s1 >/dev/null)
}
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$rootfs"
done
# Every library the binaries need must now be in the image: ldd names them.
for binary in kubefim-agent kubefim-operator; do
  for lib in $(ldd "$bins/$binary" | awk '$2 == "=>" {print $1} $1 ~ /^\// {print $1}'); do
    if ! find "$rootfs" -name "$(basename "$lib")" | grep -q .; then
      echo "image.sh: $binary needs $lib, which libc6 and libgcc-s1 do not ship" >&2
      exit 2
    fi
  done
done
rm -rf "$rootfs/usr/share/doc" "$rootfs/usr/share/lintian" "$rootfs/usr/share/locale" "$rootfs/usr/share/i18n"

# The users and directories of distroless: root and nonroot (65532), a world-writable /tmp.
mkdir -p "$rootfs/etc" "$rootfs/tmp" "$rootfs/home/nonroot" "$rootfs/root"
chmod 1777 "$rootfs/tmp"
chown 65532:65532 "$rootfs/home/nonroot"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:65532:\n' >"$rootfs/etc/group"
install -m 0755 "$bins/kubefim-agent" "$rootfs/kubefim-agent"
install -m 0755 "$bins/kubefim-operator" "$rootfs/kubefim-operator"

layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:$tag"
umoci unpack --image "$layout:$tag" "$work/bundle" >/dev/null
cp -a "$rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$layout:$tag" "$work/bundle"
umoci config --image "$layout:$tag" \
  --os linux --architecture amd64 \
  --config.user 65532:65532 \
  --config.entrypoint /kubefim-agent \
  --config.workingdir / \
  --config.label "org.opencontainers.image.title=kubefim" \
  --config.label "org.opencontainers.image.version=$tag" \
  --config.label "org.opencontainers.image.source=https://github.com/kubefim/kubefim"
umoci gc --layout "$layout"

mkdir -p "$out"
archive=$out/kubefim-$tag.oci.tar
rm -f "$archive"
skopeo copy --quiet "oci:$layout:$tag" "oci-archive:$archive:$name:$tag"
echo "image.sh: $name:$tag" >&2
echo "$archive"
