#!/usr/bin/env bash
# Shared by the e2e/kind scripts (sourced, never run): paths, tool checks, bounded polling.
# shellcheck disable=SC2034  # the constants are used by the scripts that source this file
# The two clusters come from kind-configs/{east,west}.yaml; their kubectl contexts are kind-<name>.
# Where no registry answers (scripts/kind/README.md):
#   KIND_NODE_IMAGE=<image>  a node image built here (scripts/kind/images.sh kind-node) instead of
#                            kind's default; the product image is then built here too
#   KIND_WORKERS=<n>         workers per cluster instead of the config's (a 2-core machine: 1)
#   KIND_NETWORK_SUBNET=<cidr>  range of the kind network when up.sh creates it

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
readonly REPO_ROOT
readonly CLUSTERS=(east west)
# east = 1, west = 2: the IDs the kind configs' NodePorts were chosen for (32378 + ID).
declare -A CLUSTER_ID=([east]=1 [west]=2)
readonly CLUSTER_ID
readonly DEMO_NAMESPACE=clustermesh-demo
# The kind network's range when up.sh creates it (kind's own default pick is the same).
KIND_NETWORK_SUBNET=${KIND_NETWORK_SUBNET:-172.18.0.0/16}
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

# kind from PATH, else the pinned one scripts/build-upstream.sh built.
kind() {
  if type -P kind >/dev/null; then command kind "$@"
  else "$("$REPO_ROOT/scripts/build-upstream.sh" kind 2>/dev/null)/kind" "$@"
  fi
}

# The config for CLUSTER: kind-configs/<cluster>.yaml, with KIND_WORKERS workers when set and,
# for a node image built here, kubeadm pointed at the etcd image that image carries (the tag is
# a label of the image: scripts/kind/images.sh).
cluster_config() {
  local cluster=$1 out etcd_tag=""
  out=$(mktemp "/tmp/clustermesh-kind-$cluster-XXXXXX.yaml")
  if [ -n "${KIND_NODE_IMAGE:-}" ]; then
    etcd_tag=$(docker image inspect --format '{{index .Config.Labels "io.clustermesh.kind.etcd-tag"}}' "$KIND_NODE_IMAGE") \
      || die "KIND_NODE_IMAGE=$KIND_NODE_IMAGE is not a local image: build it with scripts/kind/images.sh kind-node"
  fi
  (cd "$REPO_ROOT" && node -e '
    const { parse, stringify } = require("yaml");
    const [file, workers, etcdTag] = process.argv.slice(1);
    const config = parse(require("fs").readFileSync(file, "utf8"));
    if (workers !== "") {
      const others = config.nodes.filter((n) => n.role !== "worker");
      config.nodes = [...others, ...Array.from({ length: Number(workers) }, () => ({ role: "worker" }))];
    }
    if (etcdTag) {
      config.kubeadmConfigPatches = [...(config.kubeadmConfigPatches ?? []),
        stringify({ kind: "ClusterConfiguration", etcd: { local: { imageTag: etcdTag } } })];
    }
    process.stdout.write(stringify(config));
  ' "kind-configs/$cluster.yaml" "${KIND_WORKERS:-}" "$etcd_tag") >"$out" || die "could not write the kind config of $cluster"
  printf '%s' "$out"
}

# The cgroup v2 mount a node sees: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on
# hybrid ones. With kind's private cgroup namespace its root is the node container's own cgroup.
node_cgroup2_path() {
  local node=$1
  if [ "$(docker exec "$node" stat -f -c %T /sys/fs/cgroup)" = cgroup2fs ]; then printf /sys/fs/cgroup
  elif [ "$(docker exec "$node" stat -f -c %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then printf /sys/fs/cgroup/unified
  else die "node $node has no cgroup v2 mount (neither /sys/fs/cgroup nor /sys/fs/cgroup/unified): the agent's socket-LB needs one"
  fi
}

readonly CLI_JS="$REPO_ROOT/dist/cli/main.js"
clustermesh() { node "$CLI_JS" "$@"; }

require_tools() {
  command -v docker >/dev/null 2>&1 || die "docker is not installed: kind needs Docker (https://docs.docker.com/engine/install/)"
  docker info >/dev/null 2>&1 || die "docker is installed but no engine answers ('docker info' failed): start the Docker daemon"
  kind version >/dev/null 2>&1 || die "kind is not installed: see https://kind.sigs.k8s.io/docs/user/quick-start/#installation (or scripts/build-upstream.sh kind)"
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
