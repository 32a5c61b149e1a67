#!/usr/bin/env bash
# Makes sure a Docker engine answers, for kind: installs Debian's docker.io when no engine is
# installed, starts dockerd when none runs, and leaves a running engine alone. Idempotent; says
# what it did. Then checks that Docker's bridge networks stay clear of the host uplink and of the
# lab's address plan (scripts/kind/ranges.mjs).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf 'engine: %s\n' "$*" >&2; }
die() { printf 'engine: error: %s\n' "$*" >&2; exit 1; }

readonly LOG=/var/log/clustermesh-dockerd.log
# dockerd started by this script records its pid here (a running engine of anyone else is left alone)
readonly OURS=/run/clustermesh-dockerd.pid
readonly RUNTIME=clustermesh-runc
readonly WRAPPER=/usr/local/lib/clustermesh/runc-bounded
# the pid files dockerd and its containerd keep (variables, not readonly: the engine test points them elsewhere)
DOCKERD_PIDFILE=/var/run/docker.pid
CONTAINERD_PIDFILE=/var/run/docker/containerd/containerd.pid

# Whether this host's capability bounding set lacks a capability the kernel has: then privileged
# containers need the runc wrapper (scripts/kind/runc-bounded says why).
caps_bounded() {
  local bounding last
  bounding=$((16#$(awk '/^CapBnd:/ { print $2 }' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  [ "$bounding" != $(((1 << (last + 1)) - 1)) ]
}

install_wrapper() {
  cmp -s "$here/runc-bounded" "$WRAPPER" && return 0
  mkdir -p "$(dirname "$WRAPPER")"
  install -m 0755 "$here/runc-bounded" "$WRAPPER"
  say "installed $WRAPPER (this host's capability bounding set lacks capabilities privileged containers ask for)"
}

# A dockerd that was killed (not stopped) leaves its pid files behind, and the pids in them are
# soon reused by other processes. dockerd then refuses to start (docker.pid), or takes the other
# process for its containerd and waits for a socket nobody serves until it gives up (containerd.pid:
# "containerd is still running", then "timeout waiting for containerd to start"). Called when no
# dockerd runs: a pid file whose process is not what it names is removed; a containerd still
# running from that engine is left for the new dockerd to reconnect to.
clear_stale_pidfiles() {
  local file name pid
  for file in "$DOCKERD_PIDFILE:dockerd" "$CONTAINERD_PIDFILE:containerd"; do
    name=${file##*:} file=${file%:*}
    [ -f "$file" ] || continue
    pid=$(cat "$file" 2>/dev/null || true)
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$name" ] && continue
    rm -f "$file"
    say "removed $file, left by a $name that no longer runs (pid ${pid:-none} is not a $name now)"
  done
}

start_dockerd() {
  local flags=()
  if caps_bounded; then
    install_wrapper
    flags=(--add-runtime "$RUNTIME=$WRAPPER" --default-runtime "$RUNTIME")
  fi
  say "starting dockerd ${flags[*]} (log: $LOG)"
  # setsid: the engine outlives this script and the shell that ran it
  setsid dockerd "${flags[@]}" >>"$LOG" 2>&1 </dev/null &
  local pid=$!
  echo "$pid" >"$OURS"
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || die "dockerd exited without answering: see the end of $LOG ($(tail -1 "$LOG" 2>/dev/null))"
    sleep 1
  done
  docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s: see the end of $LOG ($(tail -1 "$LOG" 2>/dev/null))"
  say "dockerd answers ($(docker info --format 'storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}, runtime {{.DefaultRuntime}}'))"
}

# A running engine that would hand privileged containers capabilities this host cannot grant:
# restarted when this script started it, refused otherwise.
check_runtime() {
  caps_bounded || return 0
  [ "$(docker info --format '{{.DefaultRuntime}}')" = "$RUNTIME" ] && { install_wrapper; return 0; }
  local pid
  pid=$(cat "$OURS" 2>/dev/null || true)
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = dockerd ]; then
    say "restarting the dockerd this script started (pid $pid) with the runc wrapper"
    kill "$pid"
    while kill -0 "$pid" 2>/dev/null; do sleep 0.5; done
    start_dockerd
  else
    die "the running Docker engine lacks the runc wrapper this host needs (its capability bounding set misses capabilities, so privileged containers fail with 'unable to apply caps'): restart dockerd with --add-runtime $RUNTIME=$WRAPPER --default-runtime $RUNTIME (from scripts/kind/runc-bounded)"
  fi
}

check_ranges() {
  local nets net subnets
  nets=$(docker network ls --filter driver=bridge --format '{{.Name}}')
  for net in $nets; do
    subnets=$(docker network inspect "$net" --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}')
    # shellcheck disable=SC2086  # one argument per subnet
    [ -z "${subnets// /}" ] || node "$here/ranges.mjs" "Docker network '$net'" $subnets || exit 1
  done
}

main() {
  if docker info >/dev/null 2>&1; then
    say "a Docker engine already answers: left as it is"
    check_runtime
    check_ranges
    exit 0
  fi

  [ "$(id -u)" = 0 ] || die "no Docker engine answers and installing or starting one needs root: run as root, or start Docker yourself"

  if ! command -v dockerd >/dev/null 2>&1; then
    say "no Docker engine installed: installing Debian's docker.io"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/tmp/clustermesh-docker-install.log 2>&1 \
      || die "apt-get install docker.io failed (log: /tmp/clustermesh-docker-install.log): is the Debian mirror reachable?"
    # the package's service may have started it already (hosts with systemd)
    docker info >/dev/null 2>&1 && { say "docker.io installed and its engine answers"; check_runtime; check_ranges; exit 0; }
  fi

  pgrep -x dockerd >/dev/null && die "dockerd runs but does not answer: see its log, or stop it and run this again"
  clear_stale_pidfiles
  start_dockerd
  check_ranges
}

# sourced by test/deploy/kind-engine.test.ts for its functions; run, it does the work
if [ "${BASH_SOURCE[0]}" = "$0" ]; then main "$@"; fi
