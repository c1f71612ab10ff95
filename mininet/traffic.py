"""Traffic inside Mininet hosts, measured: a TCP echo stream that must survive migrations
without a reconnect, a fast pinger that counts losses, short pings, and a sniffer in every
host (python3, AF_PACKET, no tcpdump) to show which addresses hosts ever saw.

The scripts are those of tests/common/traffic.rs (same arguments, same output), written to the
network's temporary directory and run in the hosts with Mininet's popen; every process is
recorded so that it is ended at exit.
"""

import ipaddress
import json
import os
import re
import signal
import subprocess
import sys
import time

import ssmn

# The scripts that run inside the hosts, shared with the Open vSwitch tests
# (tests/common/traffic.rs includes the same files).
_SCRIPTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'tests', 'traffic')


def _script(name):
    with open(os.path.join(_SCRIPTS, name)) as f:
        return f.read()

DRAIN_SECS = 2.0

ECHO_SERVER = _script('echo_server.py')

ECHO_CLIENT = _script('echo_client.py')

SNIFFER = _script('sniffer.py')


def _write(net, name, text):
    p = os.path.join(net.dir, name)
    if not os.path.exists(p):
        with open(p, 'w') as f:
            f.write(text)
    return p


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ''


def _wait_file(path, proc, timeout, what):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None and not os.path.exists(path):
            raise ssmn.Error('%s exited (%s) before it was ready' % (what, proc.returncode))
        if time.monotonic() > deadline:
            raise ssmn.Error('%s not ready after %ss' % (what, timeout))
        time.sleep(0.01)


_seq = [0]


def _tmp(net, what):
    _seq[0] += 1
    d = os.path.join(net.dir, '%s-%d' % (what, _seq[0]))
    os.makedirs(d)
    return d


# --------------------------------------------------------------------------------------------
# Packets


class Packet:
    """One frame a sniffer saw."""

    def __init__(self, line):
        f = line.split()
        if len(f) != 10:
            raise ValueError(line)
        self.time = float(f[0])
        self.incoming = f[1] == 'in'
        self.ethertype = int(f[2], 16)
        self.src_mac, self.dst_mac = f[3], f[4]
        self.src, self.dst = f[5], f[6]
        self.proto, self.ttl = int(f[7]), int(f[8])
        self.frame = bytes.fromhex(f[9])
        if self.ethertype == 0x86dd and len(self.frame) >= 54:
            # The sniffer's address columns are IPv4's; an IPv6 packet's are in the frame.
            self.src = str(ipaddress.IPv6Address(self.frame[22:38]))
            self.dst = str(ipaddress.IPv6Address(self.frame[38:54]))

    def describe(self):
        t = time.strftime('%H:%M:%S', time.localtime(self.time)) + ('%.3f' % (self.time % 1))[1:]
        what = {0x0806: 'ARP', 0x8035: 'RARP'}.get(self.ethertype)
        if what:
            what += ' %s' % {1: 'request', 2: 'reply', 3: 'reverse request'}.get(self.proto,
                                                                               self.proto)
        else:
            what = {1: 'ICMP type %s' % self.icmp_type(), 6: 'TCP', 17: 'UDP'}.get(
                self.proto, 'IP proto %d' % self.proto)
        return '%s %s %s %s -> %s (%s -> %s)' % (t, 'in' if self.incoming else 'out', what,
                                                 self.src, self.dst, self.src_mac, self.dst_mac)

    def icmp_type(self):
        if self.ethertype != 0x0800 or self.proto != 1:
            return None
        ihl = (self.frame[14] & 0xf) * 4
        off = 14 + ihl
        return self.frame[off] if len(self.frame) > off else None

    def icmp6_type(self):
        """The ICMPv6 type of an IPv6 packet whose next header is ICMPv6 (no extension
        headers), else None."""
        if self.ethertype != 0x86dd or self.proto != 58:
            return None
        return self.frame[54] if len(self.frame) > 54 else None

    def addresses(self):
        """Every IPv4 or IPv6 address the frame names as an address: IP source and destination,
        ARP sender and target, an ICMP redirect's gateway, the header an ICMP error quotes; an
        IPv6 neighbour discovery target, an ICMPv6 redirect's target and destination, the header
        an ICMPv6 error or redirect quotes."""
        d = self.frame
        ip = lambda b: str(ipaddress.IPv4Address(bytes(b)))
        if self.ethertype == 0x86dd:
            return self.addresses6()
        if self.ethertype in (0x0806, 0x8035):
            return {self.src, self.dst}
        out = {self.src, self.dst}
        t = self.icmp_type()
        if t in (3, 4, 5, 11, 12):
            off = 14 + (d[14] & 0xf) * 4
            if t == 5 and len(d) >= off + 8:
                out.add(ip(d[off + 4:off + 8]))
            inner = off + 8
            if len(d) >= inner + 20:
                out.add(ip(d[inner + 12:inner + 16]))
                out.add(ip(d[inner + 16:inner + 20]))
        return out


    def addresses6(self):
        d = self.frame
        ip6 = lambda b: str(ipaddress.IPv6Address(bytes(b)))
        if len(d) < 54:
            return set()
        out = {ip6(d[22:38]), ip6(d[38:54])}
        if d[20] == 58 and len(d) >= 58:  # ICMPv6 right after the header
            t, body = d[54], d[58:]
            if t in (135, 136) and len(body) >= 20:
                out.add(ip6(body[4:20]))
            if t == 137 and len(body) >= 36:
                out.update({ip6(body[4:20]), ip6(body[20:36])})
            # The packet an error (1 to 4) or a redirect's option quotes: any IPv6 header in
            # the rest, found by its version nibble and addresses in place.
            rest = body[4:] if t < 128 else body[36:] if t == 137 else b''
            for i in range(0, max(0, len(rest) - 39)):
                if rest[i] >> 4 == 6 and (t < 128 or i % 8 == 0):
                    out.update({ip6(rest[i + 8:i + 24]), ip6(rest[i + 24:i + 40])})
                    break
        return out


class Sniffers:
    """A sniffer on eth0 inside every host."""

    def __init__(self, net):
        self.net = net
        script = _write(net, 'sniffer.py', SNIFFER)
        self.procs = {}
        for h in net.t.hosts:
            d = _tmp(net, 'cap-' + h.name)
            out, ready = os.path.join(d, 'packets'), os.path.join(d, 'ready')
            p = net.popen(h.name, [sys.executable, script, 'eth0', out, ready],
                          stderr=open(os.path.join(d, 'err'), 'w'))
            self.procs[h.name] = (p, out, ready)
        for name, (p, _, ready) in self.procs.items():
            _wait_file(ready, p, 10, 'sniffer in ' + name)

    def packets(self, host):
        out = []
        for line in _read(self.procs[host][1]).splitlines():
            try:
                out.append(Packet(line))
            except ValueError:
                pass
        return out

    def stop(self):
        for p, _, _ in self.procs.values():
            ssmn.stop_proc(p, signal.SIGTERM)
            self.net.forget(p)

    def seen(self, addrs):
        """(host, address, the first such frame) for each host whose frames ever named one of
        `addrs`."""
        addrs = set(addrs)
        hits = {}
        for h in self.procs:
            for pkt in self.packets(h):
                for a in pkt.addresses() & addrs:
                    hits.setdefault((h, a), pkt.describe())
        return [(h, a, d) for (h, a), d in sorted(hits.items())]


# --------------------------------------------------------------------------------------------
# TCP


class TcpStream:
    """A TCP connection from `client` to an echo server in `server` (at `dst:port`), one
    numbered message every 10 ms, connected exactly once: any reset, EOF or timeout is a
    broken stream. With `duration` the client stops by itself."""

    def __init__(self, net, server, client, dst, port, duration=0.0):
        self.net = net
        d = _tmp(net, 'tcp')
        srv = _write(net, 'echo_server.py', ECHO_SERVER)
        cli = _write(net, 'echo_client.py', ECHO_CLIENT)
        ready = os.path.join(d, 'server.ready')
        self.server_log = os.path.join(d, 'server.log')
        self.server = net.popen(server, [sys.executable, srv, str(port), ready, self.server_log],
                                stderr=open(os.path.join(d, 'server.err'), 'w'))
        _wait_file(ready, self.server, 10, 'echo server in ' + server)
        self.stop_file = os.path.join(d, 'client.stop')
        self.result = os.path.join(d, 'client.json')
        up = os.path.join(d, 'client.up')
        self.client = net.popen(client, [sys.executable, cli, str(dst), str(port), str(duration),
                                         self.stop_file, self.result, up, str(DRAIN_SECS)],
                                stderr=open(os.path.join(d, 'client.err'), 'w'))
        self.up = up

    def wait_up(self, timeout=10):
        try:
            _wait_file(self.up, self.client, timeout, 'echo client')
            return True
        except ssmn.Error:
            return False

    def wait(self, timeout):
        """Waits (at most `timeout` s) for a client with a duration to finish by itself."""
        try:
            self.client.wait(timeout)
        except subprocess.TimeoutExpired:
            pass

    def stop(self):
        """Stops sending, waits for the echoes still missing, reports (a dict)."""
        with open(self.stop_file, 'w'):
            pass
        if self.client.poll() is None:
            self.client.send_signal(signal.SIGTERM)
        try:
            self.client.wait(DRAIN_SECS + 5)
        except subprocess.TimeoutExpired:
            self.client.kill()
            self.client.wait()
        ssmn.stop_proc(self.server, signal.SIGTERM, 2)
        self.net.forget(self.client)
        self.net.forget(self.server)
        try:
            r = json.loads(_read(self.result))
        except ValueError:
            r = {'connected': False, 'open': False, 'sent': 0, 'echoed': 0,
                 'error': 'the client left no report', 'max_gap_ms': 0.0}
        log = _read(self.server_log)
        r['server_log'] = log
        r['accepted'] = [l.split()[1].rsplit(':', 1)[0] for l in log.splitlines()
                         if l.startswith('accepted ')]
        r['unbroken'] = bool(r['connected'] and r['open'] and not r['error'] and r['sent'] > 0
                             and r['echoed'] == r['sent'] and len(r['accepted']) == 1)
        return r


# --------------------------------------------------------------------------------------------
# Pings


def ping(net, host, dst, count=5, interval=0.05, wait=2):
    """`ping -n -c COUNT -i INTERVAL -W WAIT DST` in a host, started now (a Popen)."""
    return net.popen(host, ['ping', '-n', '-c', str(count), '-i', str(interval), '-W', str(wait),
                            str(dst)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def ping_result(net, proc):
    """(transmitted, received, text) of a finished ping."""
    out, _ = proc.communicate()
    net.forget(proc)
    text = out.decode(errors='replace')
    m = re.search(r'(\d+) packets transmitted, (\d+) received', text)
    return (int(m.group(1)), int(m.group(2)), text) if m else (0, 0, text)


class Pinger:
    """`ping -n -O -D -i 0.01 -W 1 DST` in a host across a migration: lost requests and the
    longest gap between replies."""

    def __init__(self, net, host, dst):
        self.net = net
        d = _tmp(net, 'ping')
        self.out = os.path.join(d, 'ping.out')
        self.proc = net.popen(host, ['ping', '-n', '-O', '-D', '-i', '0.01', '-W', '1', str(dst)],
                              stdout=open(self.out, 'w'), stderr=subprocess.STDOUT)

    def replies(self):
        return parse_ping_run(_read(self.out), time.time(), 1.0)['received']

    def wait_replies(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        while self.replies() < n:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self):
        stopped_at = time.time()
        ssmn.stop_proc(self.proc, signal.SIGINT)
        self.net.forget(self.proc)
        return parse_ping_run(_read(self.out), stopped_at, 1.0)


def parse_ping_run(text, stopped_at, wait):
    """tests/common/traffic.rs parse_ping_run: requests unanswered for less than `wait` s at
    the stop are in flight, not lost."""
    replies, no_answer = {}, {}
    transmitted, max_seq = None, 0
    for line in text.splitlines():
        m = re.match(r'(\d+) packets transmitted, ', line)
        if m:
            transmitted = int(m.group(1))
            continue
        m = re.match(r'\[(\d+\.\d+)\] (.*)', line)
        if not m:
            continue
        ts, msg = float(m.group(1)), m.group(2)
        s = re.search(r'icmp_seq=(\d+)', msg)
        if not s:
            continue
        seq = int(s.group(1))
        max_seq = max(max_seq, seq)
        if msg.startswith('no answer yet'):
            no_answer[seq] = ts
        elif ' bytes from ' in msg:
            replies.setdefault(seq, ts)
    transmitted = max(transmitted or max_seq, max_seq)
    r = {'transmitted': transmitted, 'received': len(replies), 'lost': 0, 'in_flight': 0,
         'longest_loss_run': 0, 'max_gap_ms': 0.0}
    run = 0
    lost = []
    for seq in range(1, transmitted + 1):
        if seq in replies:
            run = 0
        elif seq in no_answer and no_answer[seq] + wait <= stopped_at:
            r['lost'] += 1
            lost.append(seq)
            run += 1
            r['longest_loss_run'] = max(r['longest_loss_run'], run)
        else:
            r['in_flight'] += 1
    times = sorted(replies.values())
    for a, b in zip(times, times[1:]):
        r['max_gap_ms'] = max(r['max_gap_ms'], (b - a) * 1000)
    if lost and times and lost[-1] > max(replies):
        r['max_gap_ms'] = max(r['max_gap_ms'], (stopped_at - times[-1]) * 1000)
    r['max_gap_ms'] = round(r['max_gap_ms'], 1)
    return r
