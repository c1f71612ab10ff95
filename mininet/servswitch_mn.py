#!/usr/bin/python3
"""Builds a topology file as a Mininet network connected to servswitch and opens Mininet's CLI
with three more commands:

    migrate HOST SWITCH[:PORT]   live-migrate HOST (its interface moves, then QEMU's RARP;
                                 nothing is told to the controller), e.g. `migrate vm r2:3`
    where [HOST]                 the controller's view (GET /api/v1/hosts): location, home,
                                 care-of addresses
    cases                        run the eight cases of the paper now (or, on a topology
                                 without their hosts, the simpler migration scenario)

    python3 mininet/servswitch_mn.py --topology topologies/paper-testbed.toml
        starts `servswitch run` itself on free loopback ports
    python3 mininet/servswitch_mn.py --topology FILE --controller 127.0.0.1:6653 --api URL
        uses a running controller

Every other Mininet command works as usual (`vm ping d`, `pingall`, `dpctl dump-flows -O
OpenFlow13`, `net`, ...). Switch names in Mininet are ssm<switch> (bridge names); `migrate`
takes the topology's names.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import ssmn  # noqa: E402  (runs again under /usr/bin/python3 if Mininet is not importable)
import scenario  # noqa: E402
from mininet.cli import CLI  # noqa: E402
from mininet.log import output, setLogLevel  # noqa: E402


class ServSwitchCLI(CLI):
    """Mininet's CLI, plus migrate, where and cases."""

    # Host names such as h1-0 are node names too.
    identchars = CLI.identchars + '-'

    def __init__(self, ssnet, **kwargs):
        self.ssnet = ssnet
        CLI.__init__(self, ssnet.net, **kwargs)

    def do_migrate(self, line):
        """migrate HOST SWITCH[:PORT]: live-migrate HOST to that switch port (the lowest free
        one without PORT), as a hypervisor does it: its interface moves (address, MAC and
        routes stay; no flow is touched), then it sends QEMU's RARP. Nothing is told to the
        controller; this waits until the controller's API shows the host there."""
        args = line.split()
        if len(args) != 2:
            output('usage: migrate HOST SWITCH[:PORT]   e.g. migrate vm r2:3\n')
            return
        host, to = args
        sw, _, port = to.partition(':')
        sw = self.ssnet.switch_of_bridge.get(sw, sw)
        try:
            if sw not in self.ssnet.bridges:
                raise ssmn.Error('no switch %r (switches: %s)'
                                 % (sw, ', '.join(self.ssnet.bridges)))
            port = int(port) if port else self.ssnet.free_port_now(sw)
            frm = self.ssnet.location.get(host)
            since = self.ssnet.api.migrations()
            t0 = time.monotonic()
            self.ssnet.migrate(host, sw, port)
            seen = self.ssnet.wait_migrated(host, sw, port, since)
        except (ssmn.Error, ValueError) as e:
            output('migrate: %s\n' % e)
            return
        output('%s moved %s:%d -> %s:%d; the controller shows it there after %.0f ms%s\n'
               % (host, *frm, sw, port, (time.monotonic() - t0) * 1000,
                  ', care-of ' + ','.join(seen['care_of']) if seen['care_of']
                  else ', at home'))

    def do_where(self, line):
        """where [HOST]: where the controller has HOST (or every host): location, home,
        care-of addresses, and where Mininet has its interface."""
        try:
            hosts = self.ssnet.api.hosts()
        except ssmn.Error as e:
            output('where: %s\n' % e)
            return
        names = line.split()
        for n in names:
            if not any(h['name'] == n for h in hosts):
                output('where: the controller knows no host %r\n' % n)
        for h in hosts:
            if names and h['name'] not in names:
                continue
            loc, home = h['location'], h['home']
            mn = self.ssnet.location.get(h['name'])
            output('%-8s %-22s at %s:%s  home %s:%s (%s)  care-of %s%s\n'
                   % (h['name'], ','.join(h['ips']), loc['switch'], loc['port'], home['switch'],
                      home['port'], home.get('subnet') or '-',
                      ','.join(h['care_of']) or '-',
                      '' if mn is None or mn == (loc['switch'], loc['port'])
                      else '  (Mininet: %s:%d)' % mn))

    def do_cases(self, _line):
        """cases: the eight cases of the paper now, with pings, TCP streams, outages and a
        sniffer in every host (hosts not at their place in the file go home first)."""
        try:
            scenario.Run(self.ssnet, log=lambda s: output(s + '\n')).run()
        except ssmn.Error as e:
            output('cases: %s\n' % e)


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    scenario.add_network_args(p)
    p.add_argument('--script', metavar='FILE', help='run the CLI commands in FILE, then exit')
    args = p.parse_args()
    problem = ssmn.environment_problem(args.datapath)
    if problem:
        print('error: ' + problem)
        return 2
    ssmn.on_signals_exit()
    net = ctl = None
    code = 0
    try:
        net, ctl = scenario.start_network(args)
        net.start()
        setLogLevel(os.environ.get('SSM_LOGLEVEL', 'output'))
        print('network up: %s -> Mininet switches %s; hosts %s'
              % (os.path.basename(args.topology),
                 ', '.join('%s=%s' % kv for kv in net.bridges.items()),
                 ', '.join(h.name for h in net.t.hosts)))
        print("commands: migrate HOST SWITCH[:PORT], where [HOST], cases; 'help' for Mininet's")
        ServSwitchCLI(net, script=args.script)
    except ssmn.Error as e:
        print('error: %s' % e)
        code = 1
    finally:
        if net:
            net.stop()
        if ctl:
            ctl.stop()
    return code


if __name__ == '__main__':
    sys.exit(main())
