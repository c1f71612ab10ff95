#!/bin/bash
# One loop of the issue-14 speed comparison: ofload's ARP workload against this tree's
# controller (and, if OLD is set, another build's), then tcp_floor with the same window.
#   WINDOW=64 MODE=throughput bench/ratio.sh      # or WINDOW=1 MODE=latency
#   OLD=/path/to/other/servswitch bench/ratio.sh  # the tree before, side by side
# Needs release builds (cargo build --release --workspace --bins). Everything on loopback.
set -euo pipefail
cd "$(dirname "$0")/.."
WINDOW=${WINDOW:-64}
MODE=${MODE:-throughput}
SECONDS_EACH=${SECONDS_EACH:-5}
NEW=${NEW:-target/release/servswitch}
TOPO=$(mktemp /tmp/ssratio.XXXXXX.toml)
trap 'rm -f "$TOPO"' EXIT
"$NEW" gen-topology --racks 16 --hosts-per-rack 4 --racks-per-block 8 >"$TOPO"

one() {
    "$1" run --topology "$TOPO" --listen 127.0.0.1:16653 --api 127.0.0.1:18080 >/dev/null 2>&1 &
    local pid=$!
    sleep 1.5
    target/release/ofload --controller 127.0.0.1:16653 --topology "$TOPO" --switches 16 \
        --workload arp --mode "$MODE" --window "$WINDOW" --seconds "$SECONDS_EACH" | grep '^RESULT'
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}
echo "this tree: $(one "$NEW")"
if [ -n "${OLD:-}" ]; then echo "other:     $(one "$OLD")"; fi
echo "tcp_floor: $(target/release/tcp_floor --window "$WINDOW" --workers 2 | grep '^RESULT')"
