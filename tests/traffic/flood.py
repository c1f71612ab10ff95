import json, os, random, signal, socket, struct, sys, time
# flood.py IFNAME MAC IP SUBNET KINDS SECONDS SEED READY_FILE OUT_FILE
# What a hostile tenant sends to make the controller work, as fast as one process can, from
# IFNAME (an AF_PACKET raw socket). MAC and IP are the tenant's own; SUBNET is its /24 as
# "A.B.C"; the random addresses are taken from A.B.C.100-189, where no host of the tests is.
# KINDS, comma-separated, rotate frame by frame:
#   arp      ARP requests from MAC/IP for random addresses (nobody has them)
#   rarp     RARPs, as QEMU announces a VM, with random MACs
#   garp     gratuitous ARP requests with random MACs and random addresses
#   ipv4     UDP from MAC/IP to random addresses of the subnet (unknown destinations)
#   ipv4src  UDP from random MACs and addresses to the subnet's gateway (unknown sources)
# Stops after SECONDS or on SIGTERM; writes JSON {"sent", "errors", "seconds"} to OUT_FILE.
stopping = False
def on_signal(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

ifname, mac, ip, subnet, kinds, seconds, seed, ready, out = sys.argv[1:10]
seconds = float(seconds)
rnd = random.Random(int(seed))
own_mac = bytes.fromhex(mac.replace(':', ''))
own_ip = socket.inet_aton(ip)
gateway = socket.inet_aton(subnet + '.1')
BROADCAST = b'\xff' * 6
GATEWAY_MAC = bytes.fromhex('025353000001')

def rand_mac():
    # Locally administered, unicast.
    return bytes([0x02] + [rnd.randrange(256) for _ in range(5)])

def rand_ip():
    return socket.inet_aton('%s.%d' % (subnet, rnd.randrange(100, 190)))

def arp(op, ethertype, sha, spa, tha, tpa, dst=BROADCAST):
    return (dst + sha + struct.pack('!H', ethertype)
            + struct.pack('!HHBBH', 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa
            + b'\x00' * 18)

def checksum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff)
    s += s >> 16
    return (~s) & 0xffff

def udp(src_mac, src, dst):
    payload = b'flood' * 4
    u = struct.pack('!HHHH', 40000, 9, 8 + len(payload), 0) + payload
    h = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(u), 0, 0, 64, 17, 0, src, dst)
    h = h[:10] + struct.pack('!H', checksum(h)) + h[12:]
    return GATEWAY_MAC + src_mac + b'\x08\x00' + h + u

def frame(kind):
    if kind == 'arp':
        return arp(1, 0x0806, own_mac, own_ip, b'\x00' * 6, rand_ip())
    if kind == 'rarp':
        m = rand_mac()
        return arp(3, 0x8035, m, b'\x00' * 4, m, b'\x00' * 4)
    if kind == 'garp':
        m, a = rand_mac(), rand_ip()
        return arp(1, 0x0806, m, a, b'\x00' * 6, a)
    if kind == 'ipv4':
        return udp(own_mac, own_ip, rand_ip())
    if kind == 'ipv4src':
        return udp(rand_mac(), rand_ip(), gateway)
    raise SystemExit('unknown kind %r' % kind)

kinds = kinds.split(',')
frames = [frame(kinds[i % len(kinds)]) for i in range(4096)]
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
open(ready, 'w').close()
sent = errors = 0
start = time.monotonic()
end = start + seconds
while not stopping:
    for f in frames[(sent % 4096) & ~255:][:256]:
        try:
            s.send(f)
            sent += 1
        except OSError:
            errors += 1
    if time.monotonic() >= end:
        break
r = {'sent': sent, 'errors': errors, 'seconds': time.monotonic() - start}
with open(out + '.tmp', 'w') as fh:
    json.dump(r, fh)
os.rename(out + '.tmp', out)
