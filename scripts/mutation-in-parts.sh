#!/bin/sh
# Mutation testing of one folder in parts that each finish on their own.
#
# Why: Stryker writes its incremental file only when a run completes, and a
# whole folder takes hours on 2 cores (src/store: over 3 h with the Cluster
# tests, test/MUTATION.md), so a run stopped part-way leaves nothing for the
# next one to reuse. Each part here has its own incremental file and keeps its
# per-mutant log, so a part that finished is never tested again unless its
# source or the tests that reach it change, and a later invocation carries on
# with the parts not done yet.
#
#   sh scripts/mutation-in-parts.sh src/store [files-per-part]   # default 3
#   SKIP_DONE=1 sh scripts/mutation-in-parts.sh src/store   # parts without a log first
#   sh scripts/mutation-in-parts.sh src/store/l1-store.ts src/store/invalidation-bus.ts:1-200 ...
#                                   # one part per file or line range (a file whose mutants
#                                   # take longer than a session, split so each part finishes)
#   node scripts/mutation-summary.mjs reports/mutation/parts/*.ndjson
#
# A part costs one dry run (the whole suite, about 2 min) on top of its mutants.
set -e
cd "$(dirname "$0")/.."
folder=${1:?usage: sh scripts/mutation-in-parts.sh <folder> [files-per-part]}
per=${2:-3}
parts=reports/mutation/parts
mkdir -p "$parts"
node scripts/ensure-redis-server.mjs

case "$folder" in
  *.ts | *.ts:*)
    # Parts named on the command line: one file or line range each.
    per=1
    files="$*"
    ;;
  *) files=$(find "$folder" -name '*.ts' ! -name '*.d.ts' | sort) ;;
esac
set -- $files
while [ $# -gt 0 ]; do
  group=""
  n=0
  while [ $# -gt 0 ] && [ $n -lt "$per" ]; do
    group="${group:+$group,}$1"
    shift
    n=$((n + 1))
  done
  # The part's name: its first file (and line range), path separators flattened.
  name=$(echo "${group%%,*}" | sed 's#^src/##; s#\.ts##; s#/#-#g; s#:#@#')
  # SKIP_DONE=1 leaves parts that already have a log for a later run, so the
  # parts never tested come first when a session has little time.
  if [ -n "$SKIP_DONE" ] && [ -f "$parts/$name.ndjson" ]; then
    echo "== $name: has a log, skipped (SKIP_DONE)"
    continue
  fi
  echo "== $name: $group"
  status=0
  node --require ./scripts/stryker-mocha12.cjs --import ./scripts/stryker-incremental-rules.mjs node_modules/@stryker-mutator/core/bin/stryker.js run \
    --mutate "$group" --incrementalFile "$parts/$name.incremental.json" || status=$?
  # Kept even when the part was stopped: its figures still count in the summary.
  cp reports/mutation/mutants.ndjson "$parts/$name.ndjson"
  [ $status -eq 0 ] || exit $status
done
node scripts/mutation-summary.mjs "$parts"/*.ndjson
