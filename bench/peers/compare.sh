#!/bin/sh
# Runs the same `ofload --workload arp` against servswitch (release) and against the minimal
# os-ken ARP responder (bench/peers/arp_responder.py) on this machine; prints both and the
# ratio. Environment: SWITCHES (16), SECONDS (5), MODE (throughput), WINDOW (64),
# VENV (/tmp/osken-venv: created with `pip install os-ken` if missing).
set -eu
cd "$(dirname "$0")/../.."
SWITCHES=${SWITCHES:-16} SECONDS_=${SECONDS:-5} MODE=${MODE:-throughput} WINDOW=${WINDOW:-64}
VENV=${VENV:-/tmp/osken-venv}
if [ ! -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import os_ken' 2>/dev/null; then
    python3 -m venv "$VENV" && "$VENV/bin/pip" install -q os-ken
fi
cargo build --release -q -p servswitch -p ofload
TOPO=$(mktemp /tmp/ofload-topo.XXXXXX.toml)
target/release/servswitch gen-topology --racks "$SWITCHES" --hosts-per-rack 4 \
    --racks-per-block 8 > "$TOPO"
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null || true; done; rm -f "$TOPO"; }
trap cleanup EXIT
load() {
    target/release/ofload --controller "127.0.0.1:$1" --topology "$TOPO" --workload arp \
        --switches "$SWITCHES" --mode "$MODE" --window "$WINDOW" --seconds "$SECONDS_"
}
RUST_LOG=warn target/release/servswitch run --topology "$TOPO" --listen 127.0.0.1:16653 \
    --api 127.0.0.1:18080 >/tmp/compare-servswitch.log 2>&1 &
PIDS="$!"; sleep 1
echo "== servswitch"; A=$(load 16653); echo "$A"
"$VENV/bin/python" bench/peers/osken_run.py --ofp-tcp-listen-port 16654 \
    bench/peers/arp_responder.py >/tmp/compare-osken.log 2>&1 &
PIDS="$PIDS $!"; sleep 3
echo "== os-ken"; B=$(load 16654); echo "$B"
ra=$(echo "$A" | sed -n 's/.*responses_per_s=\([0-9]*\).*/\1/p')
rb=$(echo "$B" | sed -n 's/.*responses_per_s=\([0-9]*\).*/\1/p')
echo "ratio servswitch/os-ken: $(awk "BEGIN { printf \"%.0f\", $ra / ($rb > 0 ? $rb : 1) }")x ($ra vs $rb responses/s)"
