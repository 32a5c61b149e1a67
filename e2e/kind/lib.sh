#!/usr/bin/env bash
# Shared by the e2e/kind scripts (sourced, never run): paths, tool checks, bounded polling.
# shellcheck disable=SC2034  # the constants are used by the scripts that source this file
# The two clusters come from kind-configs/{east,west}.yaml; their kubectl contexts are kind-<name>.

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO_ROOT
readonly CLUSTERS=(east west)
# east = 1, west = 2: the IDs the kind configs' NodePorts were chosen for (32378 + ID).
declare -A CLUSTER_ID=([east]=1 [west]=2)
readonly CLUSTER_ID
readonly DEMO_NAMESPACE=clustermesh-demo
# The scenario manifests run the product image too (it has node), under a fixed tag.
readonly SCENARIO_IMAGE=clustermesh:e2e

say() { printf 'e2e/kind: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

context_of() { printf 'kind-%s' "$1"; }

image_version() { node -p 'require(process.argv[1]).version' "$REPO_ROOT/package.json"; }

# The chart's default image is clustermesh:<Chart appVersion> (= package.json version).
product_image() { printf 'clustermesh:%s' "$(image_version)"; }

# Prefer the kubectl unpacked by scripts/setup.sh; fall back to the one on PATH.
kubectl_bin() {
  if [ -x "$REPO_ROOT/.tools/kubectl" ]; then printf '%s' "$REPO_ROOT/.tools/kubectl"; else printf 'kubectl'; fi
}

kc() { # kc CLUSTER ARGS...: kubectl against that kind cluster
  local cluster=$1
  shift
  "$(kubectl_bin)" --context "$(context_of "$cluster")" "$@"
}

readonly CLI_JS="$REPO_ROOT/dist/cli/main.js"
clustermesh() { node "$CLI_JS" "$@"; }

require_tools() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed: kind needs Docker (https://docs.docker.com/engine/install/)"
  docker info >/dev/null 2>&1 || die "docker is installed but no engine answers ('docker info' failed): start the Docker daemon"
  command -v kind >/dev/null 2>&1 || die "kind is not installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
  command -v node >/dev/null 2>&1 || die "node is not installed: Node.js 20 or newer runs the clustermesh CLI"
  command -v "$(kubectl_bin)" >/dev/null 2>&1 || die "kubectl not found: run 'npm run setup' (unpacks .tools/kubectl) or install kubectl"
  [ -f "$CLI_JS" ] || die "dist/cli/main.js is missing: run 'npm run setup' (it builds the TypeScript)"
}

# wait_until DESCRIPTION TIMEOUT_SECONDS COMMAND...: polls COMMAND every 2 s until it succeeds or
# the deadline passes.
wait_until() {
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "timed out after ${timeout}s waiting for: $what"
      return 1
    fi
    sleep 2
  done
}
