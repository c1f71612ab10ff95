#!/bin/bash
# Link failure on Open vSwitch's userspace datapath, measured with the switch alone
# (docs/failover.md): (1) does a port's liveness follow its veth going down, how fast, and
# does a fast-failover group switch over with pings every 10 ms; (2) the primary's port
# deleted from the bridge mid-ping; (3) whether a patch port ever stops being live.
# Needs root and the OVS daemons. Creates only ssx* bridges and interfaces and ss-x-*
# namespaces (no real interface touched), and removes them again.
set -u
command -v ovs-vsctl >/dev/null || { echo "needs Open vSwitch"; exit 1; }
[ "$(id -u)" = 0 ] || { echo "needs root"; exit 1; }
cleanup() {
  ovs-vsctl --if-exists del-br ssx0 2>/dev/null
  for n in a b c; do ip netns del ss-x-$n 2>/dev/null; ip link del ssx$n 2>/dev/null; done
}
cleanup
TMP=$(mktemp -d /tmp/ssx.XXXXXX)
ovs-vsctl add-br ssx0 -- set bridge ssx0 datapath_type=netdev protocols=OpenFlow13 fail-mode=secure
i=1
for n in a b c; do
  ip netns add ss-x-$n
  ip link add ssx$n type veth peer name ssx${n}p
  ip link set ssx${n}p netns ss-x-$n
  ip link set ssx$n up
  ovs-vsctl add-port ssx0 ssx$n -- set interface ssx$n ofport_request=$i
  i=$((i+1))
done
# a and b are two "uplinks" toward the same host address (both namespaces answer 10.9.0.2),
# c is the sender.
ip -n ss-x-a addr add 10.9.0.2/24 dev ssxap; ip -n ss-x-a link set ssxap address 02:00:00:00:09:02
ip -n ss-x-b addr add 10.9.0.2/24 dev ssxbp; ip -n ss-x-b link set ssxbp address 02:00:00:00:09:02
ip -n ss-x-c addr add 10.9.0.1/24 dev ssxcp; ip -n ss-x-c link set ssxcp address 02:00:00:00:09:01
for n in a b c; do ip -n ss-x-$n link set ssx${n}p up; ip -n ss-x-$n link set lo up; done
ip -n ss-x-c neigh add 10.9.0.2 lladdr 02:00:00:00:09:02 dev ssxcp
ip -n ss-x-a neigh add 10.9.0.1 lladdr 02:00:00:00:09:01 dev ssxap
ip -n ss-x-b neigh add 10.9.0.1 lladdr 02:00:00:00:09:01 dev ssxbp
ovs-ofctl -O OpenFlow13 add-group ssx0 'group_id=1,type=ff,bucket=watch_port:1,output:1,bucket=watch_port:2,output:2'
ovs-ofctl -O OpenFlow13 add-flow ssx0 'in_port=3,actions=group:1'
ovs-ofctl -O OpenFlow13 add-flow ssx0 'in_port=1,actions=output:3'
ovs-ofctl -O OpenFlow13 add-flow ssx0 'in_port=2,actions=output:3'
sleep 1
echo "--- port 1 before:"; ovs-ofctl -O OpenFlow13 dump-ports-desc ssx0 | grep -A3 "^ 1(" | grep -E "config|state"
ip netns exec ss-x-c ping -i 0.01 -c 400 -W 1 10.9.0.2 > "$TMP/ping1" 2>&1 &
PING=$!
sleep 1
T0=$(date +%s.%N)
ip -n ss-x-a link set ssxap down
# Poll OVS's view of port 1 until it says LINK_DOWN (or give up after 5 s).
while :; do
  S=$(ovs-ofctl -O OpenFlow13 dump-ports-desc ssx0 | grep -A3 "^ 1(" | grep "state:")
  case "$S" in *LINK_DOWN*) break;; esac
  T=$(date +%s.%N); if awk "BEGIN{exit !($T - $T0 > 5)}"; then S="(no LINK_DOWN within 5 s) $S"; break; fi
  sleep 0.005
done
T1=$(date +%s.%N)
echo "--- port 1 after the peer went down: $S"
echo "liveness followed in $(awk "BEGIN{printf \"%.1f\", ($T1 - $T0) * 1000}") ms (dump-ports-desc polled every 5 ms)"
wait $PING
tail -3 "$TMP/ping1"
echo "--- group stats:"; ovs-ofctl -O OpenFlow13 dump-group-stats ssx0
echo "--- b's veth rx:"; ip -n ss-x-b -s link show ssxbp | sed -n 3,4p
# Now the port deleted from the bridge instead.
ip -n ss-x-a link set ssxap up; sleep 1
ip netns exec ss-x-c ping -i 0.01 -c 300 -W 1 10.9.0.2 > "$TMP/ping2" 2>&1 &
PING=$!
sleep 1
echo "--- port 1 back up: $(ovs-ofctl -O OpenFlow13 dump-ports-desc ssx0 | grep -A3 "^ 1(" | grep "state:")"
ovs-vsctl del-port ssx0 ssxa   # the primary's port deleted from the bridge
wait $PING
echo "--- the primary's port deleted from the bridge mid-ping:"; tail -2 "$TMP/ping2"
cleanup

# (3) patch ports
cl() { ovs-vsctl --if-exists del-br ssx0; ovs-vsctl --if-exists del-br ssx1; }
cl
ovs-vsctl add-br ssx0 -- set bridge ssx0 datapath_type=netdev protocols=OpenFlow13 fail-mode=secure
ovs-vsctl add-br ssx1 -- set bridge ssx1 datapath_type=netdev protocols=OpenFlow13 fail-mode=secure
ovs-vsctl add-port ssx0 ssxp0 -- set interface ssxp0 type=patch options:peer=ssxp1 ofport_request=1 \
  -- add-port ssx1 ssxp1 -- set interface ssxp1 type=patch options:peer=ssxp0 ofport_request=1
sleep 0.5
st() { ovs-ofctl -O OpenFlow13 dump-ports-desc $1 | grep -A3 "^ 1(" | grep -E "config|state" | tr -s ' ' | tr '\n' ' '; echo; }
echo "patch port, both ends: $(st ssx0)"
ovs-ofctl -O OpenFlow13 mod-port ssx1 1 down; sleep 0.3
echo "peer's port administratively down (mod-port ssx1 1 down): this end $(st ssx0) peer $(st ssx1)"
ovs-ofctl -O OpenFlow13 mod-port ssx1 1 up; sleep 0.3
ovs-vsctl del-port ssx1 ssxp1; sleep 0.5
echo "peer's patch port deleted: this end $(st ssx0)"
ovs-ofctl -O OpenFlow13 mod-port ssx0 1 down; sleep 0.3
echo "this end administratively down: $(st ssx0)"
cl
rm -rf "$TMP"
