#!/usr/bin/env bash
# Builds official upstream programs from their Go modules into a machine-wide cache keyed by
# version (outside the clone, so every clone on this machine reuses it). Skips what is present.
#
#   scripts/build-upstream.sh lab     etcd, kube-apiserver, kube-controller-manager, kube-scheduler
#   scripts/build-upstream.sh kind    kubelet, kubeadm, kube-proxy, kubectl, kind, coredns (for the node image)
#
# Prints the directory of the binaries on stdout. CLUSTERMESH_UPSTREAM_BIN=<dir> uses prebuilt
# official binaries from <dir> instead (checked, never built).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
# shellcheck source=../upstream/versions.sh
. "$root/upstream/versions.sh"
say() { printf 'upstream: %s\n' "$*" >&2; }
die() { printf 'upstream: %s\n' "$*" >&2; exit 1; }

set_name="${1:-lab}"
case "$set_name" in
  lab) k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler); want_etcd=1; want_kind=0 ;;
  kind) k8s_cmds=(kubelet kubeadm kube-proxy kubectl); want_etcd=0; want_kind=1 ;;
  *) die "unknown set '$set_name' (lab or kind)" ;;
esac

cache="${CLUSTERMESH_CACHE:-/var/cache/clustermesh}/upstream"
k8s_dir="$cache/kubernetes-$KUBERNETES_VERSION"
etcd_dir="$cache/etcd-$ETCD_VERSION"
kind_dir="$cache/kind-$KIND_VERSION"
coredns_dir="$cache/coredns-$COREDNS_VERSION"

if [ -n "${CLUSTERMESH_UPSTREAM_BIN:-}" ]; then
  want=("${k8s_cmds[@]}")
  [ "$want_etcd" = 1 ] && want+=(etcd)
  [ "$want_kind" = 1 ] && want+=(kind)
  for b in "${want[@]}"; do
    [ -x "$CLUSTERMESH_UPSTREAM_BIN/$b" ] || die "CLUSTERMESH_UPSTREAM_BIN=$CLUSTERMESH_UPSTREAM_BIN has no executable '$b': put the official $b ($KUBERNETES_VERSION / etcd $ETCD_VERSION) there"
  done
  echo "$CLUSTERMESH_UPSTREAM_BIN"
  exit 0
fi

# one build at a time per cache (a second caller waits, then finds the binaries built)
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9

need_go() {
  command -v go >/dev/null 2>&1 || die "no Go toolchain on PATH: install Go >= 1.24, or set CLUSTERMESH_UPSTREAM_BIN to a directory of prebuilt official binaries"
}

# go build with the module proxy; a failure names the likely cause in one line.
go_build() { # dir, ldflags, out-dir, packages...
  local dir="$1" ldf="$2" out="$3"; shift 3
  ( cd "$dir" && CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-modcacherw \
      go build -trimpath -tags selinux,notest -ldflags "$ldf -s -w" -o "$out/" "$@" ) \
    || die "go build of $* failed (see above): is the Go module proxy reachable (GOPROXY=$(go env GOPROXY))? Or set CLUSTERMESH_UPSTREAM_BIN to a directory of prebuilt official binaries"
}

go_mod_download() { # dir
  ( cd "$1" && GOTOOLCHAIN=local GOFLAGS=-modcacherw go mod tidy >/dev/null 2>"$1/tidy.log" ) \
    || die "resolving modules in $1 failed: $(tail -1 "$1/tidy.log"); is the Go module proxy reachable? Or set CLUSTERMESH_UPSTREAM_BIN"
}

build_kubernetes() {
  local missing=()
  for c in "${k8s_cmds[@]}"; do [ -x "$k8s_dir/bin/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  need_go
  local mod="$k8s_dir/module" minor patch staging
  minor="$(echo "$KUBERNETES_VERSION" | cut -d. -f2)"; patch="$(echo "$KUBERNETES_VERSION" | cut -d. -f3)"
  staging="v0.$minor.$patch"
  mkdir -p "$mod" "$k8s_dir/bin"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 with replace lines to ./staging,
  # which a dependent module does not inherit: replace each with its published tag.
  {
    echo "module clustermesh.invalid/upstream-kubernetes"
    echo; echo "go 1.24.0"; echo "godebug default=go1.24"; echo
    echo "require k8s.io/kubernetes $KUBERNETES_VERSION"; echo
    echo "replace ("
    for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
      cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api \
      cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms \
      kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics \
      mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
      echo "	k8s.io/$m => k8s.io/$m $staging"
    done
    echo ")"
  } > "$mod/go.mod"
  local pkgs=() c
  for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  # `tool` lines make `go mod tidy` resolve exactly what these commands import
  { echo "tool ("; for p in "${pkgs[@]}"; do echo "	$p"; done; echo ")"; } >> "$mod/go.mod"
  say "resolving k8s.io/kubernetes $KUBERNETES_VERSION modules (first time: a few minutes)"
  go_mod_download "$mod"
  local v="$KUBERNETES_VERSION" ldf="" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
    ldf+=" -X $p.gitCommit=$v -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  say "building ${missing[*]} $v (cold: 10-30 min on 2 cores; cached afterwards in $k8s_dir)"
  go_build "$mod" "$ldf" "$k8s_dir/bin.tmp" "${pkgs[@]}"
  for c in "${k8s_cmds[@]}"; do mv -f "$k8s_dir/bin.tmp/$c" "$k8s_dir/bin/$c"; done
  rmdir "$k8s_dir/bin.tmp" 2>/dev/null || true
}

build_etcd() {
  [ -x "$etcd_dir/bin/etcd" ] && [ -x "$etcd_dir/bin/etcdctl" ] && return 0
  need_go
  local mod="$etcd_dir/module"
  mkdir -p "$mod" "$etcd_dir/bin"
  cat > "$mod/go.mod" <<MOD
module clustermesh.invalid/upstream-etcd

go 1.24.0

require (
	go.etcd.io/etcd/server/v3 $ETCD_VERSION
	go.etcd.io/etcd/etcdctl/v3 $ETCD_VERSION
)

tool (
	go.etcd.io/etcd/server/v3
	go.etcd.io/etcd/etcdctl/v3
)
MOD
  say "resolving etcd $ETCD_VERSION modules"
  go_mod_download "$mod"
  say "building etcd + etcdctl $ETCD_VERSION"
  local ldf="-X go.etcd.io/etcd/api/v3/version.GitSHA=$ETCD_VERSION"
  go_build "$mod" "$ldf" "$etcd_dir/bin.tmp" go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3
  # a command path ending in /v3 is named after the element before it
  mv -f "$etcd_dir/bin.tmp/server" "$etcd_dir/bin/etcd"
  mv -f "$etcd_dir/bin.tmp/etcdctl" "$etcd_dir/bin/etcdctl"
  rmdir "$etcd_dir/bin.tmp"
}

build_kind() {
  [ -x "$kind_dir/bin/kind" ] && return 0
  need_go
  mkdir -p "$kind_dir/bin"
  say "building kind $KIND_VERSION"
  ( cd "$kind_dir" && CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$kind_dir/bin" go install "sigs.k8s.io/kind@$KIND_VERSION" ) \
    || die "go install sigs.k8s.io/kind@$KIND_VERSION failed: is the Go module proxy reachable?"
}

build_coredns() {
  [ -x "$coredns_dir/bin/coredns" ] && return 0
  need_go
  mkdir -p "$coredns_dir/bin"
  say "building coredns $COREDNS_VERSION"
  ( cd "$coredns_dir" && CGO_ENABLED=0 GOTOOLCHAIN=local GOBIN="$coredns_dir/bin" \
      go install -trimpath -ldflags "-s -w" "github.com/coredns/coredns@$COREDNS_VERSION" ) \
    || die "go install github.com/coredns/coredns@$COREDNS_VERSION failed: is the Go module proxy reachable?"
}

[ "$want_etcd" = 1 ] && build_etcd
build_kubernetes
[ "$want_kind" = 1 ] && build_kind && build_coredns
# one directory of links per pinned version set, so callers need a single path
out="$cache/bin-$set_name-k8s$KUBERNETES_VERSION-etcd$ETCD_VERSION-kind$KIND_VERSION"
mkdir -p "$out"
for c in "${k8s_cmds[@]}"; do ln -sfn "$k8s_dir/bin/$c" "$out/$c"; done
[ "$want_etcd" = 1 ] && for c in etcd etcdctl; do ln -sfn "$etcd_dir/bin/$c" "$out/$c"; done
[ "$want_kind" = 1 ] && ln -sfn "$kind_dir/bin/kind" "$out/kind" && ln -sfn "$coredns_dir/bin/coredns" "$out/coredns"
echo "$out"
