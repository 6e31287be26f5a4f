#!/bin/sh
# Instructions per request of a bench/http scenario's server, counted under
# valgrind (callgrind) over real loopback HTTP: a figure the load of other
# work on the machine does not change, where wrk's ratios moved by 0.2x
# between rounds. The server (node --predictable, dist/esm through
# use-dist.mjs, as bench/http/run.mjs runs it) answers WARM requests
# uncounted, so V8 is done compiling the hit path, then N counted ones from
# bench/http/keepalive-client.mjs (16 keep-alive connections, outside
# valgrind). Counts user-space instructions only: the kernel's share of a
# request (larger for more bytes) is not in them.
#   sh bench/front-instructions.sh [scenario ...]   (default: node-raw express-tiercache-front)
# WARM (default 30000), N (5000), NODE_FLAGS (--predictable), OUT (.bench-results/instructions): the
# callgrind output, its log and node's perf map (names of JIT code) per scenario.
# Needs valgrind (apt-get install valgrind); about a minute a scenario.
set -e
cd "$(dirname "$0")/.."
WARM=${WARM:-30000}
N=${N:-5000}
OUT=${OUT:-.bench-results/instructions}
mkdir -p "$OUT"
[ $# -gt 0 ] || set -- node-raw express-tiercache-front
for s in "$@"; do
  port=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
  PORT=$port valgrind --tool=callgrind --instr-atstart=no --dump-instr=yes --callgrind-out-file="$OUT/$s.out" \
    node ${NODE_FLAGS---predictable} --perf-basic-prof --no-logfile-per-isolate --logfile="$OUT/$s.v8.log" --import tsx --import ./bench/http/use-dist.mjs "bench/http/scenarios/$s.ts" > "$OUT/$s.log" 2>&1 &
  vg=$!
  until grep -q '^ready' "$OUT/$s.log"; do
    kill -0 $vg 2>/dev/null || { echo "$s: the server died, see $OUT/$s.log"; exit 1; }
    sleep 0.5
  done
  node bench/http/keepalive-client.mjs "$port" "$WARM"
  callgrind_control -i on $vg > /dev/null 2>&1
  node bench/http/keepalive-client.mjs "$port" "$N"
  callgrind_control -i off $vg > /dev/null 2>&1
  kill -TERM $vg
  wait $vg || true
  [ -f "/tmp/perf-$vg.map" ] && mv "/tmp/perf-$vg.map" "$OUT/$s.map"
  ir=$(sed -n 's/.*Collected : \([0-9]*\).*/\1/p' "$OUT/$s.log")
  echo "$s: $((ir / N)) instructions/request ($ir over $N)"
done
