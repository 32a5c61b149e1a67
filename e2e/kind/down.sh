#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Deletes the kind clusters east and west, and the kind network when no cluster is left on it.
# Idempotent: absent clusters are skipped.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
kind version >/dev/null 2>&1 || die "kind is not installed: nothing of it to tear down"

for cluster in "${CLUSTERS[@]}"; do
  if grep -qx "$cluster" <<<"$(kind get clusters 2>/dev/null)"; then
    say "deleting cluster $cluster"
    kind delete cluster --name "$cluster"
  fi
done
# kind leaves its network behind; remove it once no kind cluster is left on it
if [ -z "$(kind get clusters 2>/dev/null)" ] && docker network inspect kind >/dev/null 2>&1; then
  say "removing the kind network"
  docker network rm kind >/dev/null
fi
