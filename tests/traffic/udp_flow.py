import json, os, signal, socket, sys, time
# udp_flow.py recv PORT READY_FILE OUT_FILE: counts datagrams until SIGTERM; writes JSON
#   {"received", "highest", "sources": [addresses seen]}.
# udp_flow.py send DST PORT INTERVAL STOP_FILE OUT_FILE: one numbered datagram every INTERVAL
#   seconds until STOP_FILE exists or SIGTERM; writes JSON {"sent", "errors"}.
stopping = False
def on_signal(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
def done(out, r):
    with open(out + '.tmp', 'w') as f:
        json.dump(r, f)
    os.rename(out + '.tmp', out)
mode = sys.argv[1]
if mode == 'recv':
    port, ready, out = int(sys.argv[2]), sys.argv[3], sys.argv[4]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    s.bind(('0.0.0.0', port))
    s.settimeout(0.05)
    r = {'received': 0, 'highest': -1, 'sources': []}
    open(ready, 'w').close()
    while not stopping:
        try:
            d, (src, _) = s.recvfrom(2048)
        except socket.timeout:
            continue
        r['received'] += 1
        if src not in r['sources']:
            r['sources'].append(src)
        try:
            r['highest'] = max(r['highest'], int(d[:8]))
        except ValueError:
            pass
    done(out, r)
else:
    dst, port, interval, stop_file, out = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5], sys.argv[6]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    r = {'sent': 0, 'errors': 0}
    nxt = time.monotonic()
    while not stopping and not os.path.exists(stop_file):
        try:
            s.sendto(b'%08d' % r['sent'] + b'.' * 56, (dst, port))
            r['sent'] += 1
        except OSError:
            r['errors'] += 1
        nxt += interval
        time.sleep(max(0.0, nxt - time.monotonic()))
    done(out, r)
