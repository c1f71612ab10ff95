import os, socket, sys, threading
port, ready, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
lock = threading.Lock()
def note(line):
    with lock, open(log, 'a') as f:
        f.write(line + '\n')
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
    note('closed %s:%d bytes=%d %s' % (peer[0], peer[1], n, why))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', port))
s.listen(16)
open(ready, 'w').close()
while True:
    c, peer = s.accept()
    note('accepted %s:%d' % peer)
    threading.Thread(target=serve, args=(c, peer), daemon=True).start()
