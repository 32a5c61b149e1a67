#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# The whole kind path: clusters up, install + connect, the scenarios, teardown.
# KEEP_CLUSTERS=1 leaves the clusters running for inspection (remove them with down.sh).
set -euo pipefail
here=$(dirname "${BASH_SOURCE[0]}")
# shellcheck source=lib.sh
source "$here/lib.sh"
require_tools

teardown() {
  if [ "${KEEP_CLUSTERS:-0}" = 1 ]; then
    say "KEEP_CLUSTERS=1: clusters left running; remove them with $here/down.sh"
  else
    "$here/down.sh"
  fi
}
trap teardown EXIT
# a stop from outside (timeout, ^C) still runs the teardown
trap 'exit 143' TERM INT

"$here/up.sh"
"$here/install.sh"
"$here/scenarios.sh"
say "kind e2e passed"
