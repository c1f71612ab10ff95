#!/usr/bin/python3
"""The paper's eight communication cases on a Mininet network built from a topology file.

    python3 mininet/scenario.py --topology topologies/paper-testbed.toml
        starts `servswitch run` itself (--servswitch PATH, default target/release/servswitch,
        else target/debug/servswitch) on free loopback ports
    python3 mininet/scenario.py --topology FILE --controller 127.0.0.1:6653 [--api URL]
        uses a controller that is already running

Roles are picked as src/cli/demo.rs Roles::pick does: C, D, D* hosts of an access subnet H, B a
host of another access switch's subnet F, E a host of a third switch. C moves to F (cases 1 to
6), D* follows (case 7) and moves on to E's network (case 8), then both go home. Each move is
made as a hypervisor makes it (the interface moves, then QEMU's RARP; nothing is told to the
controller). Each case: pings to every address of the peer and a one-second TCP echo stream.
Each move: `ping -i 0.01` from a correspondent across it (lost requests, longest gap), the
controller's API must show the host at its new place (care-of addresses exactly while away).
A sniffer in every host shows that no host ever saw a care-of address; a TCP stream from the
correspondent to C stays open across the whole chain; the tables are back to their state
before at the end.

A topology without such hosts (three-tier.toml has two per rack) gets a simpler scenario: one
host moves inside its aggregation block, across blocks, then home, and all hosts ping it and
are pinged by it at each place.

Exit status 0 only if everything passed.
"""

import argparse
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ssmn  # noqa: E402  (runs again under /usr/bin/python3 if Mininet is not importable)
import traffic  # noqa: E402

# The fabric's one link-local IPv6 gateway (src/fabric/plan.rs, GATEWAY_LL).
GATEWAY_LL = 'fe80::53:53ff:fe00:1'

SETTLE = 1.2  # after a migration, before the pinger stops: lost requests are > 1 s old


class Run:
    """One scenario run on a started network: results and failures."""

    def __init__(self, net, log=print):
        self.net = net
        self.t = net.t
        self.api = net.api
        self.log = log
        self.failures = []
        self.moves = []
        self.care_of = set()
        self.port = 5100

    def fail(self, what):
        self.failures.append(what)

    def ips(self, host):
        return self.t.host(host).ips

    def primary(self, host):
        """The address pingers and TCP streams use: the first IPv4 one, else the first IPv6."""
        h = self.t.host(host)
        return (h.ips or h.ips6)[0]

    def own(self, host):
        """Every address the host has: declared, and those it gave itself (SLAAC)."""
        node = self.net.host(host)
        out = node.cmd('ip -o addr show dev %s scope global' % node.defaultIntf())
        have = {l.split()[3].split('/')[0] for l in out.splitlines() if len(l.split()) > 3}
        return have | set(self.t.host(host).ips) | set(self.t.host(host).ips6)

    # ---- migrations

    def migrate(self, host, to, correspondent, why=''):
        """Moves `host` to `to` (switch, port) with a `ping -i 0.01` from the correspondent
        running across it; checks the controller's view; records the outage."""
        sw, port = to
        frm = self.net.location[host]
        pinger = traffic.Pinger(self.net, correspondent, self.primary(host))
        if not pinger.wait_replies(20, 5):
            self.fail('%s -> %s: no replies before the move of %s' % (correspondent, host, host))
        since = self.api.migrations()
        t0 = time.monotonic()
        seen = None
        try:
            self.net.migrate(host, sw, port)
            seen = self.net.wait_migrated(host, sw, port, since)
        except ssmn.Error as e:
            self.fail(str(e))
        took = time.monotonic() - t0
        time.sleep(SETTLE)
        p = pinger.stop()
        co = seen['care_of'] if seen else []
        self.care_of.update(co)
        m = {'host': host, 'from': '%s:%d' % frm, 'to': '%s:%d' % to, 'why': why,
             'care_of': co, 'api_ms': took * 1000, 'ping': p, 'correspondent': correspondent,
             'ok': seen is not None}
        self.moves.append(m)
        if p['transmitted'] < 50 or p['received'] == 0:
            self.fail('%s: the pinger from %s barely ran: %s' % (host, correspondent, p))
        self.log('  %s %s %s -> %s%s: controller shows it after %.0f ms%s; ping -i 0.01 from %s: '
                 '%d lost (longest run %d), longest gap %.0f ms'
                 % (time.strftime('%H:%M:%S'), host, m['from'], m['to'],
                    ' (%s)' % why if why else '', m['api_ms'],
                    ', care-of ' + ','.join(co) if co else ', home again',
                    correspondent, p['lost'], p['longest_loss_run'], p['max_gap_ms']))
        return m

    def go_home(self, correspondent=None):
        """Every host that is not where the file puts it goes back there (for the CLI)."""
        for h in self.t.hosts:
            if self.net.location[h.name] != h.at:
                since = self.api.migrations()
                self.net.migrate(h.name, *h.at)
                self.net.wait_migrated(h.name, h.at[0], h.at[1], since)
                self.log('  %s returned to %s:%d first' % (h.name, *h.at))

    # ---- one case

    def case(self, n, title, src, dst, sniffers, direct=False):
        """`src` pings every address of `dst` (5 requests, 50 ms apart), then a one-second TCP
        echo stream runs from `src` to `dst`; what `dst` saw."""
        t0 = time.time()
        tx = rx = 0
        for a in self.ips(dst):
            t, r, _ = traffic.ping_result(self.net, traffic.ping(self.net, src, a))
            tx, rx = tx + t, rx + r
        # Dual stack: the same case over IPv6 (the first address of each end).
        tx6 = rx6 = 0
        if self.t.host(src).ips6 and self.t.host(dst).ips6:
            tx6, rx6, _ = traffic.ping_result(
                self.net, traffic.ping(self.net, src, self.t.host(dst).ips6[0]))
        # After the pings: Linux ignores an ICMP redirect that quotes a TCP segment already
        # acknowledged (tcp_v4_err's window check), which is what the controller's redirects
        # for a running stream quote; pings are what make cases 5 to 7 go direct.
        self.port += 1
        tcp = traffic.TcpStream(self.net, dst, src, self.primary(dst), self.port, duration=1.0)
        tcp.wait(8)
        s = tcp.stop()
        time.sleep(0.1)
        got = [p for p in sniffers.packets(dst) if p.time >= t0 and p.incoming]
        reqs = [p for p in got if p.icmp_type() == 8 and p.dst in self.ips(dst)]
        reqs6 = [p for p in got if p.icmp6_type() == 128 and p.dst in self.t.host(dst).ips6]
        saw = []
        for p in reqs + reqs6:
            if p.src not in saw:
                saw.append(p.src)
        for a in s['accepted']:
            if a not in saw:
                saw.append(a)
        mac = self.t.host(src).mac
        # The path of the last request of the first family (IPv4 if the peer has it).
        last = (reqs or reqs6 or [None])[-1]
        path = 'direct' if last and last.src_mac == mac and last.ttl == 64 else 'routed'
        why = []
        if tx + tx6 == 0 or rx < tx:
            why.append('%d of %d answered' % (rx, tx))
        if self.t.host(src).ips6 and self.t.host(dst).ips6 and (tx6 == 0 or rx6 < tx6):
            why.append('IPv6: %d of %d answered' % (rx6, tx6))
        if not s['unbroken']:
            why.append('TCP %s' % (s['error'] or '%d of %d echoed, %d connections'
                                   % (s['echoed'], s['sent'], len(s['accepted']))))
        own = self.own(src)
        foreign = [a for a in saw if a not in own]
        if foreign or not saw:
            why.append('%s saw %s, not %s' % (dst, saw or 'nothing', ','.join(sorted(own))))
        if direct and path != 'direct':
            v6 = not reqs
            redirects = [p for p in sniffers.packets(src) if p.time >= t0 and p.incoming
                         and (p.icmp6_type() == 137 if v6 else p.icmp_type() == 5)]
            why.append('still routed after the ICMP redirect (%s got %d redirects; %s)'
                       % (src, len(redirects), self.net.host(src).cmd(
                           'ip %sroute get %s' % ('-6 ' if v6 else '', self.primary(dst))
                       ).split('\n')[0].strip()))
        return {'case': n, 'title': title, 'ends': '%s -> %s' % (src, dst),
                'pinged': ','.join(self.ips(dst) + ([self.t.host(dst).ips6[0]] if tx6 else [])),
                'answered': '%d/%d' % (rx + rx6, tx + tx6),
                'tcp': 'ok %d/%d' % (s['echoed'], s['sent']) if s['unbroken'] else 'BROKEN',
                'saw': ','.join(saw) or '-', 'path': path, 'ok': not why, 'why': '; '.join(why)}

    # ---- the whole scenario

    def start_common(self):
        self.go_home()
        self.tables_before = self.net.tables()
        self.sniffers = traffic.Sniffers(self.net)

    def finish_common(self, stream, stream_what):
        s = stream.stop()
        self.log('\nTCP stream %s across every move: %s (%d of %d echoed, longest gap %.0f ms%s)'
                 % (stream_what, 'unbroken' if s['unbroken'] else 'BROKEN', s['echoed'], s['sent'],
                    s['max_gap_ms'], ', ' + s['error'] if s['error'] else ''))
        if not s['unbroken']:
            self.fail('the TCP stream %s broke: %s' % (stream_what, s['error'] or s))
        self.sniffers.stop()
        seen = self.sniffers.seen(self.care_of)
        self.log('care-of addresses used: %s; hosts that saw one: %s'
                 % (', '.join(sorted(self.care_of)) or 'none',
                    ', '.join('%s (%s)' % h[:2] for h in seen) or 'none'))
        if not self.care_of:
            self.fail('no care-of address was ever used')
        for h, a, first in seen:
            self.fail('%s saw the care-of address %s, first: %s' % (h, a, first))
        self.api.wait_idle()
        after = self.net.tables()
        diff = []
        for sw, before in self.tables_before.items():
            a, b = set(after[sw]), set(before)
            diff += ['%s: -%s' % (sw, l) for l in sorted(b - a)]
            diff += ['%s: +%s' % (sw, l) for l in sorted(a - b)]
        self.log('flow tables after returning home: %s'
                 % ('as before' if not diff else 'DIFFERENT (%d lines)' % len(diff)))
        if diff:
            self.fail('tables after returning home differ from before:\n  ' + '\n  '.join(diff))

    def eight_cases(self, r):
        self.log('C = %s, D = %s, B = %s, E = %s, D* = %s; C moves to %s:%d, D* to %s:%d then '
                 '%s:%d\n' % (r.c, r.d, r.b, r.e, r.d_star, *r.c_to, *r.d_star_to,
                              *r.d_star_star_to))
        self.start_common()
        net = self.net
        for a, b in ((r.e, r.c), (r.d, r.c), (r.c, r.b)):
            traffic.ping_result(net, traffic.ping(net, a, self.primary(b), count=2))
        stream = traffic.TcpStream(net, r.c, r.e, self.primary(r.c), 5000)
        if not stream.wait_up():
            raise ssmn.Error('no TCP stream from %s to %s before any move' % (r.e, r.c))
        c_home, d_home = self.t.host(r.c).at, self.t.host(r.d_star).at
        self.log('migrations:')
        cases = []
        sn = self.sniffers
        self.migrate(r.c, r.c_to, r.e, 'C to F')
        cases += [self.case(1, 'C* -> E', r.c, r.e, sn), self.case(2, 'E -> C*', r.e, r.c, sn),
                  self.case(3, 'C* -> D', r.c, r.d, sn), self.case(4, 'D -> C*', r.d, r.c, sn),
                  self.case(5, 'C* -> B', r.c, r.b, sn, direct=True),
                  self.case(6, 'B -> C*', r.b, r.c, sn, direct=True)]
        self.migrate(r.d_star, r.d_star_to, r.e, 'D* to F')
        cases += [self.case(7, 'C* -> D*', r.c, r.d_star, sn, direct=True),
                  self.case(7, 'D* -> C*', r.d_star, r.c, sn, direct=True)]
        self.migrate(r.d_star, r.d_star_star_to, r.e, "D* on to E's network")
        cases += [self.case(8, 'C* -> D**', r.c, r.d_star, sn),
                  self.case(8, 'D** -> C*', r.d_star, r.c, sn)]
        self.migrate(r.d_star, d_home, r.e, 'D* home')
        self.migrate(r.c, c_home, r.e, 'C home')
        home = [self.case('home', 'E -> C', r.e, r.c, sn),
                self.case('home', 'D -> C', r.d, r.c, sn)]
        self.log('\n' + table(cases + home))
        for c in cases + home:
            if not c['ok']:
                self.fail('case %s %s: %s' % (c['case'], c['title'], c['why']))
        self.finish_common(stream, '%s -> %s' % (r.e, r.c))
        return cases

    def simple(self):
        mover, targets = pick_simple(self.t)
        corr = pick_correspondent(self.t, mover)
        m = self.t.host(mover)
        self.log('%s moves %s, then home; %s pings it across each move\n'
                 % (mover, ', then '.join('to %s:%d (%s)' % (to[0], to[1], why)
                                          for to, why in targets), corr))
        self.start_common()
        stream = traffic.TcpStream(self.net, mover, corr, m.ips[0], 5000)
        if not stream.wait_up():
            raise ssmn.Error('no TCP stream from %s to %s before any move' % (corr, mover))
        rows = [self.all_ping('at home %s:%d' % m.at, mover)]
        self.log('migrations:')
        for to, why in targets:
            self.migrate(mover, to, corr, why)
            rows.append(self.all_ping('%s %s:%d' % (why, *to), mover))
        self.migrate(mover, m.at, corr, 'home')
        rows.append(self.all_ping('home again %s:%d' % m.at, mover))
        self.log('\n' + table(rows, 'step'))
        for c in rows:
            if not c['ok']:
                self.fail('%s: %s' % (c['case'], c['why']))
        self.finish_common(stream, '%s -> %s' % (corr, mover))
        return rows

    def all_ping(self, title, mover):
        """The mover pings every address of every other host and every other host pings every
        address of the mover, all at once (3 requests each); the sources the peers saw on the
        mover's requests, and on the mover's side anything but the peers' own addresses."""
        t0 = time.time()
        others = [h.name for h in self.t.hosts if h.name != mover]
        # A one-second TCP stream from a host of the mover's home subnet (else the first
        # other host) to the mover, during the pings.
        home = self.t.subnet_of(self.ips(mover)[0])
        peer = next((h.name for h in self.t.hosts_of(home) if h.name != mover), others[0])
        self.port += 1
        tcp = traffic.TcpStream(self.net, mover, peer, self.ips(mover)[0], self.port, 1.0)
        procs = []
        for o in others:
            for a in self.ips(o):
                procs.append((mover, o, traffic.ping(self.net, mover, a, count=3)))
            for a in self.ips(mover):
                procs.append((o, mover, traffic.ping(self.net, o, a, count=3)))
        n_in = len(others) * len(self.ips(mover))
        tx = rx = 0
        bad = []
        for src, dst, p in procs:
            t, r, _ = traffic.ping_result(self.net, p)
            tx, rx = tx + t, rx + r
            if t == 0 or r < t:
                bad.append('%s->%s %d/%d' % (src, dst, r, t))
        tcp.wait(8)
        s = tcp.stop()
        time.sleep(0.1)
        # What the peers saw as the source of the mover's requests, and what the mover saw.
        saw, wrong = [], []
        for o in others:
            for p in self.sniffers.packets(o):
                # Only the mover sends echo requests to the others in this step.
                if p.time >= t0 and p.incoming and p.icmp_type() == 8 and p.src not in saw:
                    saw.append(p.src)
        own = {a for h in self.t.hosts for a in h.ips}
        for p in self.sniffers.packets(mover):
            if p.time >= t0 and p.incoming and p.icmp_type() == 8 and p.src not in own:
                wrong.append(p.src)
        why = []
        if bad:
            why.append('unanswered: ' + ', '.join(bad[:6]) + (' ...' if len(bad) > 6 else ''))
        if any(a not in self.ips(mover) for a in saw):
            why.append('peers saw the mover as %s' % saw)
        if wrong:
            why.append('%s saw requests from %s' % (mover, sorted(set(wrong))))
        if not s['unbroken'] or any(a not in self.ips(peer) for a in s['accepted']):
            why.append('TCP %s -> %s: %s, accepted from %s' % (
                peer, mover, s['error'] or '%d of %d echoed' % (s['echoed'], s['sent']),
                s['accepted']))
        return {'case': title, 'title': '', 'ends': '%s <-> %d hosts' % (mover, len(others)),
                'pinged': '%d out, %d in' % (len(procs) - n_in, n_in),
                'answered': '%d/%d' % (rx, tx),
                'tcp': '%s %d/%d %s->%s' % ('ok' if s['unbroken'] else 'BROKEN', s['echoed'],
                                           s['sent'], peer, mover),
                'saw': ','.join(saw) or '-', 'path': '-', 'ok': not why,
                'why': '; '.join(why)}

    def ipv6_stage(self):
        """Dual stack, every host at home: each host with IPv6 addresses gets its default route
        from the controller's router advertisements (through the fabric's link-local gateway),
        then pings the first IPv6 address of every other such host (the gateways answer their
        solicitations; hosts are switched inside a subnet, routed between)."""
        hosts = [h for h in self.t.hosts if h.ips6]
        deadline = time.time() + 10
        for h in hosts:
            node = self.net.host(h.name)
            while 'via %s' % GATEWAY_LL not in node.cmd('ip -6 route show default'):
                if time.time() > deadline:
                    self.fail('IPv6: %s got no default route from a router advertisement' % h.name)
                    break
                time.sleep(0.1)
        rows = []
        for h in hosts:
            for o in hosts:
                if o is h:
                    continue
                out = self.net.host(h.name).cmd('ping -6 -n -c 2 -i 0.2 -W 2 %s' % o.ips6[0])
                m = re.search(r'(\d+) packets transmitted, (\d+) received', out)
                tx, rx = (int(m.group(1)), int(m.group(2))) if m else (0, 0)
                why = '' if tx and rx == tx else '%d of %d answered' % (rx, tx)
                if why:
                    self.fail('IPv6 %s -> %s: %s' % (h.name, o.ips6[0], why))
                rows.append({'case': 'v6', 'title': '', 'ends': '%s -> %s' % (h.name, o.name),
                             'pinged': o.ips6[0], 'answered': '%d/%d' % (rx, tx), 'tcp': '-',
                             'saw': '-', 'path': '-', 'ok': not why, 'why': why})
        self.log('IPv6 between every pair of the %d hosts with IPv6 addresses, at home:' % len(hosts))
        self.log(table(rows))

    def run(self):
        if any(h.ips6 for h in self.t.hosts):
            self.ipv6_stage()
        try:
            roles = ssmn.pick_roles(self.t)
        except ssmn.Error as e:
            self.log('%s: %s;\nsimpler scenario: migrations inside one aggregation block and '
                     'across blocks, then home\n' % (os.path.basename(self.t.path), e))
            self.simple()
        else:
            self.eight_cases(roles)
        if self.failures:
            self.log('\nFAIL:')
            for f in self.failures:
                self.log('  - ' + f)
        else:
            self.log('\nPASS: every case answered, TCP streams unbroken, every migration seen by '
                     'the controller, no host ever saw a care-of address')
        return not self.failures


def pick_simple(t):
    """A host of an access switch's subnet, a target in its aggregation block (an access switch
    sharing an aggregation neighbour) and one in another block; else any other access switch
    with a subnet."""
    access = [s.name for s in t.switches if s.tier == 'access'
              and any(sn.switch == s.name for sn in t.subnets)]
    fallback = None
    for h in t.hosts:
        home = t.home_switch(h)
        if t.tier(home) != 'access' or h.at[0] != home:
            continue
        aggs = {n for n in t.neighbours(home) if t.tier(n) == 'aggregation'}
        cands = [s for s in access if s != home]
        same = [s for s in cands if aggs & t.neighbours(s)]
        other = [s for s in cands if not aggs & t.neighbours(s)]
        if same and other:
            return h.name, [((same[0], t.free_port(same[0])), 'inside its aggregation block'),
                            ((other[0], t.free_port(other[0])), 'across blocks')]
        if cands and fallback is None:
            fallback = (h.name, [((cands[0], t.free_port(cands[0])),
                                  'to another access switch')])
    if fallback:
        return fallback
    raise ssmn.Error('%s has no host of an access subnet that could move to another access '
                     "switch's subnet" % os.path.basename(t.path))


def pick_correspondent(t, mover):
    """A host elsewhere: preferably not on an access switch (the paper's E), else on another
    switch."""
    home = t.host(mover).at[0]
    others = [h for h in t.hosts if h.name != mover and h.at[0] != home]
    others.sort(key=lambda h: t.tier(h.at[0]) == 'access')
    if not others:
        raise ssmn.Error('no host on another switch to measure the outage from')
    return others[0].name


def table(rows, first='case'):
    head = (first, 'endpoints', 'pinged', 'answered', 'TCP', 'peer saw', 'path', 'result')
    lines = [[str(r['case']), ('%-9s %s' % (r['title'], r['ends'])).strip(), r['pinged'],
              r['answered'], r['tcp'], r['saw'], r['path'],
              'pass' if r['ok'] else 'FAIL: ' + r['why']] for r in rows]
    w = [max(len(x[i]) for x in lines + [list(head)]) for i in range(len(head) - 1)]
    fmt = lambda x: '  '.join(s.ljust(w[i]) for i, s in enumerate(x[:-1])) + '  ' + x[-1]
    return '\n'.join([fmt(head)] + [fmt(x) for x in lines])


def add_network_args(p):
    p.add_argument('--topology', required=True, help='topology file (TOML)')
    p.add_argument('--controller', metavar='HOST:PORT',
                   help='a running controller (default: start servswitch run here)')
    p.add_argument('--api', metavar='URL', help="the running controller's REST API (default: the "
                   "file's [controller].api, else http://127.0.0.1:8080)")
    p.add_argument('--servswitch', metavar='PATH', help='the binary to start (default: '
                   'target/release/servswitch, else target/debug/servswitch)')
    p.add_argument('--datapath', choices=('user', 'kernel'), default='user',
                   help="Open vSwitch datapath (default user: no kernel module needed)")


def start_network(args, log=print):
    """The controller (started here unless --controller) and the network; (net, ctl)."""
    t = ssmn.Topology(args.topology)
    ctl = None
    if args.controller:
        address = ssmn.parse_addr(args.controller)
        api = ssmn.Api(args.api or t.api or 'http://127.0.0.1:8080')
        log('controller %s:%d (API %s)' % (*address, api.url))
    else:
        binary = ssmn.find_servswitch(args.servswitch)
        ctl = ssmn.ControllerProcess(binary, t.path)
        address, api = ctl.address, ctl.api
        log('started %s run --topology %s --listen 127.0.0.1:%d --api 127.0.0.1:%d'
            % (binary, args.topology, ctl.of_port, ctl.api_port))
    net = ssmn.Network(t, address, datapath=args.datapath, api=api)
    return net, ctl


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_network_args(p)
    p.add_argument('--check-env', action='store_true',
                   help='only say whether this machine can run it (exit 0), or why not (exit 2)')
    args = p.parse_args()
    problem = ssmn.environment_problem(args.datapath)
    if args.check_env or problem:
        print(problem or 'ok')
        return 2 if problem else 0
    ssmn.on_signals_exit()
    net = ctl = None
    ok = False
    t0 = time.monotonic()
    try:
        net, ctl = start_network(args)
        net.start()
        print('network: %d switches, %d hosts (%s datapath), built and connected in %.1f s\n'
              % (len(net.t.switches), len(net.t.hosts), args.datapath, time.monotonic() - t0))
        ok = Run(net).run()
    except ssmn.Error as e:
        print('error: %s' % e)
    except KeyboardInterrupt:
        print('interrupted')
    except SystemExit as e:
        print('stopped by signal %d' % (e.code - 128) if isinstance(e.code, int) and e.code > 128
              else 'stopped')
    finally:
        if net:
            net.stop()
        if ctl:
            if not ok:
                tail = ctl.log().splitlines()[-40:]
                print('\ncontroller log (last 40 lines):\n' + '\n'.join(tail))
            ctl.stop()
        left = ssmn.leftovers()
        if any(left):
            print('error: left behind: bridges %s, interfaces %s' % left)
            ok = False
    print('(%.1f s)' % (time.monotonic() - t0))
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
