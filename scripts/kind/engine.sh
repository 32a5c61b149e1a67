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

check_ranges() {
  local nets net subnets
  nets=$(docker network ls --filter driver=bridge --format '{{.Name}}')
  for net in $nets; do
    subnets=$(docker network inspect "$net" --format '{{range .IPAM.Config}}{{.Subnet}} {{end}}')
    # shellcheck disable=SC2086  # one argument per subnet
    [ -z "${subnets// /}" ] || node "$here/ranges.mjs" "Docker network '$net'" $subnets || exit 1
  done
}

if docker info >/dev/null 2>&1; then
  say "a Docker engine already answers: left as it is"
  check_ranges
  exit 0
fi

[ "$(id -u)" = 0 ] || die "no Docker engine answers and installing or starting one needs root: run as root, or start Docker yourself"

if ! command -v dockerd >/dev/null 2>&1; then
  say "no Docker engine installed: installing Debian's docker.io"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker.io >/tmp/clustermesh-docker-install.log 2>&1 \
    || die "apt-get install docker.io failed (log: /tmp/clustermesh-docker-install.log): is the Debian mirror reachable?"
  # the package's service may have started it already (hosts with systemd)
  docker info >/dev/null 2>&1 && { say "docker.io installed and its engine answers"; check_ranges; exit 0; }
fi

if pgrep -x dockerd >/dev/null; then
  say "dockerd runs but does not answer yet: waiting for it"
else
  say "starting dockerd (log: $LOG)"
  # setsid: the engine outlives this script and the shell that ran it
  setsid dockerd >>"$LOG" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && break
  sleep 1
done
docker info >/dev/null 2>&1 || die "dockerd did not answer within 60 s: see the end of $LOG ($(tail -1 "$LOG" 2>/dev/null))"
say "dockerd answers ($(docker info --format 'storage {{.Driver}}, cgroup {{.CgroupDriver}} v{{.CgroupVersion}}'))"
check_ranges
