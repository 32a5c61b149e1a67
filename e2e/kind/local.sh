#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# `npm run e2e:kind` on a machine where no container registry answers (this project's machines):
# a Docker engine (scripts/kind/engine.sh), the node and product images built here and cached by
# their inputs (scripts/kind/images.sh), one worker per cluster, the whole run bounded in time,
# and nothing of kind left behind, whatever happened.
# E2E_KIND_TIMEOUT=<seconds> bounds the run after the images are built (default 2400).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
source "$here/lib.sh"

"$REPO_ROOT/scripts/kind/engine.sh"
started=$SECONDS
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-$("$REPO_ROOT/scripts/kind/images.sh" kind-node)}
"$REPO_ROOT/scripts/kind/images.sh" project >/dev/null
say "images ready in $((SECONDS - started)) s"
export KIND_NODE_IMAGE
export KIND_WORKERS=${KIND_WORKERS:-1}

# clusters of a run that was killed before its teardown (with its engine, their nodes are stopped
# containers kind still lists, and up.sh would keep them): this run starts from none
"$here/down.sh"
started=$SECONDS
status=0
timeout --kill-after=30 "${E2E_KIND_TIMEOUT:-2400}" "$here/run.sh" || status=$?
[ "$status" != 124 ] || say "error: the kind e2e did not finish within ${E2E_KIND_TIMEOUT:-2400} s"
# run.sh tears down on its own exit; this also covers a run that was killed
"$here/down.sh"
say "kind e2e finished in $((SECONDS - started)) s (exit $status)"
exit "$status"
