import os, socket, sys, threading
port, ready, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
def note(line):
    with lock, open(log, 'a') as f:
        f.write(line + '\n')
def who(peer):
    # An IPv4 client of the dual-stack socket, as IPv4 (::ffff:a.b.c.d -> a.b.c.d).
    a = peer[0]
    return (a[7:] if a.startswith('::ffff:') and '.' in a else a), peer[1]
def serve(c, peer):
    n, why = 0, 'eof'
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            c.sendall(b)
            n += len(b)
    except OSError as e:
        why = repr(e)
    note('closed %s:%d bytes=%d %s' % (who(peer) + (n, why)))
# Both families on one socket (IPv4 clients appear as ::ffff:a.b.c.d); IPv4 alone on a host
# whose IPv6 is off.
try:
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', port))
except OSError:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(('0.0.0.0', port))
s.listen(16)
open(ready, 'w').close()
while True:
    c, peer = s.accept()
    note('accepted %s:%d' % who(peer))
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
