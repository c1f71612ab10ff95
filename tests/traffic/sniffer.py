import select, signal, socket, sys, time
ifname, out, ready = sys.argv[1], sys.argv[2], sys.argv[3]
ETH_P_ALL, PACKET_OUTGOING = 3, 4
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
s.bind((ifname, ETH_P_ALL))
stopping = False
def on_term(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, on_term)
signal.signal(signal.SIGINT, on_term)
f = open(out, 'w', buffering=1)
ip = lambda b: '.'.join(map(str, b))
mac = lambda b: ':'.join('%02x' % x for x in b)
open(ready, 'w').close()
while True:
    r, _, _ = select.select([s], [], [], 0.05)
    if not r and stopping:
        break
    while True:
        try:
            d, a = s.recvfrom(65535, socket.MSG_DONTWAIT)
        except BlockingIOError:
            break
        if a[0] != ifname or len(d) < 14:
            continue
        et = int.from_bytes(d[12:14], 'big')
        if et == 0x0800 and len(d) >= 34:
            src, dst, proto, ttl = d[26:30], d[30:34], d[23], d[22]
        elif et in (0x0806, 0x8035) and len(d) >= 42:
            src, dst, proto, ttl = d[28:32], d[38:42], int.from_bytes(d[20:22], 'big'), 0
        elif et == 0x86dd and len(d) >= 54:
            # IPv6: the IPv4 columns say 0.0.0.0 (the addresses are in the frame's hex).
            src, dst, proto, ttl = bytes(4), bytes(4), d[20], d[21]
        else:
            continue
        f.write('%.6f %s %04x %s %s %s %s %d %d %s\n' % (
            time.time(), 'out' if a[2] == PACKET_OUTGOING else 'in', et, mac(d[6:12]),
            mac(d[0:6]), ip(src), ip(dst), proto, ttl, d.hex()))
# Frames the kernel could not queue for us: a capture that dropped any proves nothing by
# what it lacks (struct tpacket_stats: tp_packets, tp_drops; SOL_PACKET, PACKET_STATISTICS).
st = s.getsockopt(263, 6, 8)
f.write('# drops %d\n' % int.from_bytes(st[4:8], 'little'))
f.close()
