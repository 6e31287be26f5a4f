#!/bin/sh
# Instructions per miss, counted under valgrind (callgrind): a figure the load
# of other work on the machine does not change, for comparing two builds while
# the cores are busy. Each (build, kind) runs twice, with 500 and 2,500
# requests per batch (a warm-up batch and one measured batch each); the
# difference over the 4,000 extra requests is the per-request count, startup
# and compilation cancelling out. Slow: about 2 minutes a run. node runs with
# --predictable (single-threaded, deterministic GC): without it V8 collects
# when its timers say so, which depends on the load, and counts of one build
# moved by up to 20% between runs; with it, about 0.3%.
#   sh bench/miss-instructions.sh old=/path/to/dist/esm new=dist/esm
# Needs valgrind (apt-get install valgrind).
set -e
cd "$(dirname "$0")/.."
count() { # build-spec kind batch
  valgrind --tool=callgrind --callgrind-out-file=/dev/null node --predictable --import tsx bench/miss-inprocess.ts --build "$1" --kinds "$2" --rounds 1 --batch "$3" 2>&1 | sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
for kind in express koa; do
  a=$(count "$1" $kind 500); b=$(count "$1" $kind 2500)
  echo "$kind (no cache): $(( (b - a) / 4000 )) instructions/request"
done
for spec in "$@"; do
  for kind in express-tc koa-tc; do
    a=$(count "$spec" $kind 500); b=$(count "$spec" $kind 2500)
    echo "$kind@${spec%%=*}: $(( (b - a) / 4000 )) instructions/request"
  done
done
