#!/bin/sh
# Soak: servswitch under ofload for DURATION seconds (600), its resident memory sampled every
# EVERY seconds (10). Prints the samples and the growth from the end of the first minute to
# the end; exits 1 if it grew by more than LIMIT_KB (2048). Environment: DURATION (600),
# WORKLOAD (arp), MODE (throughput), SWITCHES (16), WINDOW (64), EVERY (10), LIMIT_KB (2048),
# PORT (16663), API_PORT (18090).
set -eu
cd "$(dirname "$0")/.."
SECS=${DURATION:-600} WORKLOAD=${WORKLOAD:-arp} MODE=${MODE:-throughput}
SWITCHES=${SWITCHES:-16} WINDOW=${WINDOW:-64} EVERY=${EVERY:-10} LIMIT_KB=${LIMIT_KB:-2048}
PORT=${PORT:-16663} API_PORT=${API_PORT:-18090}
cargo build --release -q -p servswitch -p ofload
TOPO=$(mktemp /tmp/ofload-soak.XXXXXX.toml)
LOG=$(mktemp /tmp/ofload-soak.XXXXXX.log)
target/release/servswitch gen-topology --racks "$SWITCHES" --hosts-per-rack 4 \
    --racks-per-block 8 > "$TOPO"
RUST_LOG=warn target/release/servswitch run --topology "$TOPO" --listen "127.0.0.1:$PORT" \
    --api "127.0.0.1:$API_PORT" >"$LOG" 2>&1 &
CTL=$!
LOAD=""
cleanup() { kill "$CTL" $LOAD 2>/dev/null || true; rm -f "$TOPO"; }
trap cleanup EXIT
sleep 1
rss() { awk '/^VmRSS/ { print $2 }' "/proc/$CTL/status"; }
echo "servswitch pid $CTL, $WORKLOAD $MODE, $SWITCHES switches, ${SECS} s; log $LOG"
echo "t_s rss_kb"
echo "0 $(rss)"
target/release/ofload --controller "127.0.0.1:$PORT" --topology "$TOPO" --workload "$WORKLOAD" \
    --switches "$SWITCHES" --mode "$MODE" --window "$WINDOW" --warmup 0 --seconds "$SECS" \
    > "$LOG.ofload" 2>&1 &
LOAD=$!
t=0 base="" last=""
while kill -0 "$LOAD" 2>/dev/null && [ "$t" -lt "$SECS" ]; do
    sleep "$EVERY"; t=$((t + EVERY))
    last=$(rss); echo "$t $last"
    if [ "$t" -ge 60 ] && [ -z "$base" ]; then base=$last; fi
done
wait "$LOAD" || { echo "ofload failed:"; cat "$LOG.ofload"; exit 1; }
grep RESULT "$LOG.ofload"
kill -0 "$CTL" || { echo "servswitch died"; exit 1; }
base=${base:-$last}
echo "rss after 60 s: $base kB; at the end: $last kB; growth: $((last - base)) kB (limit $LIMIT_KB)"
[ $((last - base)) -le "$LIMIT_KB" ]
