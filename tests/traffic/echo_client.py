import json, os, select, signal, socket, sys, time
dst, port, duration = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
stop_file, out, up_file, drain = sys.argv[4], sys.argv[5], sys.argv[6], float(sys.argv[7])
INTERVAL = float(sys.argv[8]) if len(sys.argv) > 8 else 0.01
stopping = False
def on_signal(*_):
    global stopping
    stopping = True
signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
r = {'connected': False, 'open': False, 'sent': 0, 'echoed': 0, 'max_gap_ms': 0.0,
     'error': None, 'duration_ms': 0.0}
t0 = time.monotonic()
def finish():
    r['duration_ms'] = round((time.monotonic() - t0) * 1000, 3)
    with open(out + '.tmp', 'w') as f:
        json.dump(r, f)
    os.rename(out + '.tmp', out)
    sys.exit(0)
try:
    s = socket.create_connection((dst, port), timeout=5)
except OSError as e:
    r['error'] = 'connect: %s' % (e,)
    finish()
r['connected'] = r['open'] = True
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
s.setblocking(False)
pending, inbuf = b'', b''
last = None
def gap(now):
    if last is not None:
        r['max_gap_ms'] = max(r['max_gap_ms'], round((now - last) * 1000, 3))
start = time.monotonic()
next_send = start
deadline = start + duration if duration > 0 else float('inf')
drain_until = None
try:
    while True:
        now = time.monotonic()
        if drain_until is None and (stopping or now >= deadline or os.path.exists(stop_file)):
            drain_until = now + drain
        if drain_until is not None and ((r['echoed'] == r['sent'] and not pending) or now >= drain_until):
            break
        if drain_until is None and now >= next_send:
            pending += b'%08d\n' % r['sent']
            if r['sent'] == 0:
                last = now
            r['sent'] += 1
            next_send = max(next_send + INTERVAL, now)
        timeout = 0.05 if drain_until is not None else max(0.0, min(next_send - now, 0.05))
        rl, wl, _ = select.select([s], [s] if pending else [], [], timeout)
        if wl:
            try:
                pending = pending[s.send(pending):]
            except BlockingIOError:
                pass
        if rl:
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                raise ConnectionError('connection closed by the peer')
            inbuf += data
            now = time.monotonic()
            while b'\n' in inbuf:
                line, inbuf = inbuf.split(b'\n', 1)
                if line != b'%08d' % r['echoed']:
                    raise ConnectionError('echo %r, expected %08d' % (line, r['echoed']))
                gap(now)
                last = now
                r['echoed'] += 1
                if r['echoed'] == 1:
                    open(up_file, 'w').close()
    if r['echoed'] < r['sent']:
        gap(time.monotonic())
except OSError as e:
    r['open'] = False
    r['error'] = '%s: %s' % (type(e).__name__, e)
    gap(time.monotonic())
try:
    s.close()
except OSError:
    pass
finish()
