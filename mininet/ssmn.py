"""servswitch on Mininet: topology files as Mininet networks, live migrations, the controller.

Shared by scenario.py (the eight cases of the paper, outages) and servswitch_mn.py (Mininet's
CLI with `migrate`, `cases`, `where`). Needs Debian's Mininet 2.3 (`apt-get install mininet`),
root, and a running Open vSwitch.

Everything this module creates carries the prefix `ssm`: bridges `ssm<switch>`, link veth ends
`ssm<switch>-eth<port>`, the switch-side veth of each host `ssm-<host>` (inside the host it is
`eth0`). One network at a time per machine: a lock (the abstract Unix socket
`servswitch-mininet`) is held while it exists, so whatever carries the prefix when the lock is
free is a leftover of a run that died, and is removed before building. Processes started in
hosts are recorded with their start time in /run/servswitch-mininet.pids and, if a run dies,
ended by the next one (by pid, only if the start time still matches).
"""

import os
import sys

SYSTEM_PYTHON = '/usr/bin/python3'


def _ensure_mininet():
    """Debian installs Mininet for the system interpreter; a python3 from a version manager
    does not see it, so run again with /usr/bin/python3."""
    try:
        import mininet  # noqa: F401
        return
    except ImportError:
        pass
    if (os.path.exists(SYSTEM_PYTHON) and os.path.realpath(sys.executable)
            != os.path.realpath(SYSTEM_PYTHON)
            and not os.environ.get('SERVSWITCH_MN_REEXEC')):
        os.environ['SERVSWITCH_MN_REEXEC'] = '1'
        os.execv(SYSTEM_PYTHON, [SYSTEM_PYTHON] + sys.argv)
    sys.stderr.write('error: Mininet is not installed (apt-get install -y mininet)\n')
    sys.exit(2)


_ensure_mininet()

import atexit  # noqa: E402
import ipaddress  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tomllib  # noqa: E402
import urllib.error  # noqa: E402
import urllib.request  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from mininet.link import Link  # noqa: E402
from mininet.log import setLogLevel  # noqa: E402
from mininet.net import Mininet  # noqa: E402
from mininet.node import Host, OVSSwitch, RemoteController  # noqa: E402

PREFIX = 'ssm'
IFNAMSIZ = 15
LOCK_NAME = b'\0servswitch-mininet'
PIDFILE = '/run/servswitch-mininet.pids'
VSCTL = ['ovs-vsctl', '--timeout=20']
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Error(Exception):
    """A problem a user can cause or fix: printed as one line."""


def run(args, check=True, input=None):
    """Runs a command in the root namespace; its stdout."""
    p = subprocess.run(args, input=input, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise Error('`%s` failed (%d): %s' % (' '.join(args), p.returncode,
                                               (p.stderr or p.stdout).strip()))
    return p.stdout


# --------------------------------------------------------------------------------------------
# Topology files


def _port_ref(s, where):
    m = re.fullmatch(r'\s*([^:\s]+)\s*:\s*(\d+)\s*', str(s))
    if not m:
        raise Error('%s: %r is not SWITCH:PORT' % (where, s))
    return m.group(1), int(m.group(2))


@dataclass
class Switch:
    name: str
    dpid: int
    tier: str


@dataclass
class Subnet:
    name: str
    switch: str
    # The IPv4 prefix and gateway, or None (a subnet with IPv6 only).
    net: object
    gateway: object
    # The IPv6 prefix (dual stack, or IPv6 only), or None.
    net6: object = None


@dataclass
class TopoHost:
    name: str
    mac: str
    ips: list
    at: tuple
    # (address, prefix length) for each address, and the default gateway.
    addrs: list = field(default_factory=list)
    gateway: str = ''
    # IPv6 addresses from `ips`, and (address, prefix length) for each: a host with any runs
    # with IPv6 on (its default IPv6 route from the controller's router advertisements);
    # the others with IPv6 off.
    ips6: list = field(default_factory=list)
    addrs6: list = field(default_factory=list)


class Topology:
    """A topology file (the TOML format of docs/ and INTERFACE.md)."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        try:
            with open(path, 'rb') as f:
                doc = tomllib.load(f)
        except OSError as e:
            raise Error('%s: %s' % (path, e.strerror))
        except tomllib.TOMLDecodeError as e:
            raise Error('%s: %s' % (path, e))
        ctl = doc.get('controller', {})
        self.listen = ctl.get('listen')
        self.api = ctl.get('api')
        self.switches = []
        for i, s in enumerate(doc.get('switch', [])):
            dpid = s.get('dpid')
            if isinstance(dpid, str):
                dpid = int(dpid.replace(':', ''), 16)
            if not isinstance(dpid, int):
                raise Error('%s: switch[%d]: no dpid' % (path, i))
            self.switches.append(Switch(s['name'], dpid, s.get('tier', 'access')))
        names = {s.name for s in self.switches}
        self.links = []
        for i, l in enumerate(doc.get('link', [])):
            a = _port_ref(l.get('a'), 'link[%d].a' % i)
            b = _port_ref(l.get('b'), 'link[%d].b' % i)
            for end in (a, b):
                if end[0] not in names:
                    raise Error('%s: link[%d]: no switch %r' % (path, i, end[0]))
            self.links.append((a, b))
        self.subnets = []
        for s in doc.get('subnet', []):
            self.subnets.append(Subnet(s['name'], s['switch'],
                                       ipaddress.ip_network(s['prefix'])
                                       if 'prefix' in s else None,
                                       ipaddress.ip_address(s['gateway'])
                                       if 'gateway' in s else None,
                                       ipaddress.ip_network(s['prefix6'])
                                       if 'prefix6' in s else None))
        self.hosts = []
        for i, h in enumerate(doc.get('host', [])):
            ips = [ipaddress.ip_address(a)
                   for a in (h.get('ips') or ([h['ip']] if 'ip' in h else []))]
            at = _port_ref(h.get('at'), 'host[%d].at' % i)
            host = TopoHost(h['name'], h['mac'].lower(),
                            [str(a) for a in ips if a.version == 4], at,
                            ips6=[str(a) for a in ips if a.version == 6])
            for ip in host.ips:
                sn = self.subnet_of(ip)
                if sn is None:
                    raise Error('%s: host %s: %s is in no subnet' % (path, host.name, ip))
                host.addrs.append((ip, sn.net.prefixlen))
                host.gateway = host.gateway or str(sn.gateway)
            for ip in host.ips6:
                sn = self.subnet_of(ip)
                if sn is None:
                    raise Error('%s: host %s: %s is in no subnet' % (path, host.name, ip))
                host.addrs6.append((ip, sn.net6.prefixlen))
            if not host.ips and not host.ips6:
                raise Error('%s: host %s has no address' % (path, host.name))
            self.hosts.append(host)

    def subnet_of(self, ip):
        """The subnet whose prefix of the address's family holds it."""
        ip = ipaddress.ip_address(ip)
        return next((s for s in self.subnets
                     if (s.net if ip.version == 4 else s.net6) is not None
                     and ip in (s.net if ip.version == 4 else s.net6)), None)

    @staticmethod
    def first_address(host):
        """A host's first address: its first IPv4 one, or its first IPv6 one."""
        return (host.ips or host.ips6)[0]

    def host(self, name):
        return next((h for h in self.hosts if h.name == name), None)

    def tier(self, switch):
        return next((s.tier for s in self.switches if s.name == switch), None)

    def home_switch(self, host):
        return self.subnet_of(self.first_address(host)).switch

    def hosts_of(self, subnet):
        """Hosts whose first address is in the subnet and who are attached to its switch."""
        return [h for h in self.hosts
                if self.subnet_of(self.first_address(h)) is subnet
                and h.at[0] == subnet.switch]

    def free_port(self, switch, skip=()):
        """The lowest port of the switch that no link or host of the file uses (src/cli/demo.rs)."""
        used = {p for a, b in self.links for (s, p) in (a, b) if s == switch}
        used |= {h.at[1] for h in self.hosts if h.at[0] == switch}
        used |= set(skip)
        p = 1
        while p in used:
            p += 1
        return p

    def neighbours(self, switch):
        return {b[0] if a[0] == switch else a[0] for a, b in self.links if switch in (a[0], b[0])}


@dataclass
class Roles:
    """Who plays which part of Fig. 3 (src/cli/demo.rs Roles::pick)."""
    c: str
    d: str
    b: str
    e: str
    d_star: str
    c_to: tuple
    d_star_to: tuple
    d_star_star_to: tuple


def pick_roles(t):
    """H an access subnet with at least three hosts (D, C, D* in file order), F another access
    switch's subnet with a host (B), E a host of a third switch's subnet (preferably not an
    access switch). Raises Error when the topology has no such hosts."""
    access = [s for s in t.subnets if t.tier(s.switch) == 'access']
    home = next((s for s in access if len(t.hosts_of(s)) >= 3), None)
    if home is None:
        raise Error('the eight cases need an access subnet with three hosts (D, C and D*)')
    foreign = next((s for s in access if s.switch != home.switch and t.hosts_of(s)), None)
    if foreign is None:
        raise Error("the eight cases need a second access switch's subnet with a host (B)")
    thirds = [s for s in t.subnets
              if s.switch not in (home.switch, foreign.switch) and t.hosts_of(s)]
    thirds.sort(key=lambda s: t.tier(s.switch) == 'access')
    if not thirds:
        raise Error("the eight cases need a third switch's subnet with a host (E)")
    third = thirds[0]
    h = t.hosts_of(home)
    c_port = t.free_port(foreign.switch)
    return Roles(c=h[1].name, d=h[0].name, d_star=h[2].name, b=t.hosts_of(foreign)[0].name,
                 e=t.hosts_of(third)[0].name, c_to=(foreign.switch, c_port),
                 d_star_to=(foreign.switch, t.free_port(foreign.switch, [c_port])),
                 d_star_star_to=(third.switch, t.free_port(third.switch)))


# --------------------------------------------------------------------------------------------
# Names, lock, leftovers


def _valid_ifname(name):
    return len(name) <= IFNAMSIZ and re.fullmatch(r'[A-Za-z0-9_-]+', name) is not None


def _pick(used, preferred, fallback):
    name = preferred if _valid_ifname(preferred) and preferred not in used else fallback
    assert _valid_ifname(name) and name not in used, name
    used.add(name)
    return name


def plan_names(t):
    """Bridge per switch, veth end per link end, switch-side veth per host."""
    used = set()
    bridges = {s.name: _pick(used, PREFIX + s.name, '%s_s%d' % (PREFIX, i))
               for i, s in enumerate(t.switches)}
    ports = {}
    for i, (a, b) in enumerate(t.links):
        for end, side in ((a, 'a'), (b, 'b')):
            ports[end] = _pick(used, '%s-eth%d' % (bridges[end[0]], end[1]),
                               '%s_l%d%s' % (PREFIX, i, side))
    veths = {h.name: _pick(used, '%s-%s' % (PREFIX, h.name), '%s_h%d' % (PREFIX, i))
             for i, h in enumerate(t.hosts)}
    return bridges, ports, veths


_lock = None


def acquire_lock():
    """Held for the life of the process; the kernel drops it when the process dies."""
    global _lock
    if _lock is not None:
        return
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(LOCK_NAME)
    except OSError:
        s.close()
        raise Error('another servswitch Mininet network is running on this machine '
                    '(one at a time: its names all start with %r)' % PREFIX)
    _lock = s


def ours(name):
    return name.startswith(PREFIX)


def list_bridges():
    return [b for b in run(VSCTL + ['list-br'], check=False).split()]


def list_links():
    out = run(['ip', '-o', 'link', 'show'], check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(': ')
        if len(parts) > 1:
            names.append(parts[1].split('@')[0])
    return names


def leftovers():
    return ([b for b in list_bridges() if ours(b)], [l for l in list_links() if ours(l)])


def _proc_start(pid):
    try:
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def record_pid(pid):
    """Remembers a process we started, so that a later run can end it if we die first."""
    start = _proc_start(pid)
    if start:
        with open(PIDFILE, 'a') as f:
            f.write('pid %d %s\n' % (pid, start))


def record_dir(path):
    """Remembers a temporary directory, so that a later run can remove it if we die first."""
    with open(PIDFILE, 'a') as f:
        f.write('dir %s\n' % path)


def kill_recorded():
    """Ends processes a dead run recorded (same pid and start time only) and removes its
    temporary directories."""
    try:
        with open(PIDFILE) as f:
            lines = f.read().split('\n')
    except OSError:
        return
    for line in lines:
        kind, _, rest = line.partition(' ')
        if kind == 'dir' and os.path.basename(rest).startswith('ssm-'):
            shutil.rmtree(rest, ignore_errors=True)
            continue
        try:
            pid, start = rest.split()
            pid = int(pid)
        except ValueError:
            continue
        if kind == 'pid' and _proc_start(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    try:
        os.unlink(PIDFILE)
    except OSError:
        pass


def remove_leftovers(processes=True):
    """Removes every bridge and interface with our prefix (and what a dead run recorded);
    the lock must be held."""
    if processes:
        kill_recorded()
    bridges, links = leftovers()
    if bridges:
        args = list(VSCTL)
        for b in bridges:
            args += ['--', '--if-exists', 'del-br', b]
        run(args, check=False)
    for l in list_links():
        if ours(l):
            run(['ip', 'link', 'del', l], check=False)
    bridges, links = leftovers()
    if bridges or links:
        raise Error('could not remove leftovers: bridges %s, interfaces %s' % (bridges, links))


# --------------------------------------------------------------------------------------------
# The controller


def find_servswitch(explicit=None):
    """--servswitch, else target/release/servswitch, else target/debug/servswitch (never
    builds)."""
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise Error('%s: not an executable' % explicit)
        return explicit
    roots = [os.environ['CARGO_TARGET_DIR']] if os.environ.get('CARGO_TARGET_DIR') else []
    roots.append(os.path.join(REPO, 'target'))
    for root in roots:
        for profile in ('release', 'debug'):
            p = os.path.join(root, profile, 'servswitch')
            if os.access(p, os.X_OK):
                return p
    raise Error('no servswitch binary in target/release or target/debug: run '
                '`cargo build --release` first, or give --servswitch PATH')


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


class ControllerProcess:
    """`servswitch run --topology FILE --listen 127.0.0.1:P --api 127.0.0.1:Q`, stopped with
    SIGTERM (then SIGKILL) by its pid."""

    def __init__(self, binary, topology, extra=()):
        acquire_lock()
        remove_leftovers()
        self.of_port, self.api_port = free_port(), free_port()
        self.dir = tempfile.mkdtemp(prefix='ssm-ctl-')
        record_dir(self.dir)
        self.log_path = os.path.join(self.dir, 'servswitch.log')
        env = dict(os.environ)
        env.setdefault('RUST_LOG', 'info')
        self.proc = subprocess.Popen(
            [binary, 'run', '--topology', topology, '--listen', '127.0.0.1:%d' % self.of_port,
             '--api', '127.0.0.1:%d' % self.api_port] + list(extra),
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(self.log_path, 'w'), env=env)
        record_pid(self.proc.pid)
        self.api = Api('http://127.0.0.1:%d' % self.api_port)
        deadline = time.monotonic() + 15
        while True:
            if self.proc.poll() is not None:
                raise Error('servswitch exited at start (%s):\n%s' % (self.proc.returncode,
                                                                      self.log()))
            try:
                socket.create_connection(('127.0.0.1', self.api_port), timeout=1).close()
                break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise Error("servswitch's API did not come up:\n" + self.log())
            time.sleep(0.05)

    @property
    def address(self):
        return ('127.0.0.1', self.of_port)

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()
        except OSError:
            return ''

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.environ.get('SSM_KEEP'):
            sys.stderr.write('kept %s (SSM_KEEP)\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


class Api:
    """The controller's REST API (INTERFACE.md)."""

    def __init__(self, url):
        self.url = url.rstrip('/')
        if not self.url.startswith('http'):
            self.url = 'http://' + self.url

    def get(self, path, raw=False):
        try:
            with urllib.request.urlopen(self.url + path, timeout=10) as r:
                body = r.read().decode()
        except (urllib.error.URLError, OSError) as e:
            raise Error('controller API %s%s: %s' % (self.url, path, e))
        return body if raw else json.loads(body)

    def hosts(self):
        return self.get('/api/v1/hosts')

    def host(self, mac):
        return next((h for h in self.hosts() if h['mac'].lower() == mac.lower()), None)

    def switches(self):
        return self.get('/api/v1/switches')

    def metric(self, name):
        for line in self.get('/metrics', raw=True).splitlines():
            if line.startswith(name + ' '):
                return int(float(line.split()[1]))
        return None

    def migrations(self):
        return self.metric('servswitch_migrations_total') or 0

    def wait_idle(self, timeout=10):
        """Waits until no update is being installed (a migration's last phase follows its
        answer by a drain): the tables are the plan then."""
        deadline = time.monotonic() + timeout
        while self.metric('servswitch_updates_in_progress'):
            if time.monotonic() > deadline:
                raise Error('updates still in progress after %ds' % timeout)
            time.sleep(0.02)


def parse_addr(s, default_port=6653):
    host, _, port = s.rpartition(':')
    if not host:
        return s, default_port
    return host, int(port)


# --------------------------------------------------------------------------------------------
# The network


class QuietRemoteController(RemoteController):
    """Mininet checks a remote controller with `echo A | telnet -e A IP PORT`, which now and
    then hangs forever against a controller that keeps the connection open; Network.start
    checks with a plain TCP connect instead."""

    def checkListening(self):
        pass


class SSHost(Host):
    """A host as servswitch expects it: IPv6 off unless the topology gives it IPv6 addresses,
    several addresses, transmit checksum offload off (with the userspace datapath TCP through
    a flow that rewrites an address fails otherwise)."""

    def config(self, extra_addrs=(), addrs6=(), **params):
        if not addrs6:
            self.cmd('sysctl -qw net.ipv6.conf.all.disable_ipv6=1 '
                     'net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1')
        r = super().config(**params)
        intf = self.defaultIntf()
        for a in extra_addrs:
            self.cmd('ip addr add %s dev %s' % (a, intf))
        for a in addrs6:
            # No duplicate address detection: the address is usable at once.
            self.cmd('ip -6 addr add %s dev %s nodad' % (a, intf))
        self.cmd('ethtool -K %s tx off' % intf)
        return r


class Network:
    """A topology file built as a Mininet network connected to servswitch."""

    def __init__(self, topology, controller, datapath='user', api=None):
        self.t = topology
        self.controller = controller
        self.datapath = datapath
        self.api = api
        self.net = None
        self.stopped = False
        self.procs = []
        self.dir = tempfile.mkdtemp(prefix='ssm-')
        self.bridges, self.patch, self.veths = plan_names(topology)
        self.switch_of_bridge = {b: s for s, b in self.bridges.items()}
        # Where each host is now: host -> (switch, port).
        self.location = {h.name: h.at for h in topology.hosts}

    # ---- build and tear down

    def start(self, wait=30):
        if _lock is None:
            acquire_lock()
            remove_leftovers()
        record_dir(self.dir)
        atexit.register(self.stop)
        setLogLevel(os.environ.get('SSM_LOGLEVEL', 'warning'))
        net = Mininet(topo=None, build=False, controller=None, autoSetMacs=False,
                      autoStaticArp=False, waitConnected=False)
        self.net = net
        ip, port = self.controller
        try:
            socket.create_connection((ip, port), timeout=3).close()
        except OSError as e:
            raise Error('no controller listening at %s:%d: %s' % (ip, port, e))
        net.addController(QuietRemoteController('ssmc', ip=ip, port=port))
        for s in self.t.switches:
            net.addSwitch(self.bridges[s.name], cls=OVSSwitch, dpid='%016x' % s.dpid,
                          protocols='OpenFlow13', failMode='secure', datapath=self.datapath,
                          inband=False)
        for h in self.t.hosts:
            first, rest = (h.addrs[0], h.addrs[1:]) if h.addrs else (None, [])
            net.addHost(h.name, cls=SSHost, ip='%s/%d' % first if first else None, mac=h.mac,
                        defaultRoute='via %s' % h.gateway if first else None,
                        extra_addrs=['%s/%d' % a for a in rest],
                        addrs6=['%s/%d' % a for a in h.addrs6])
        self._record_shells()
        # Links are veth pairs, not OVS patch ports: a patch port never goes down, and a
        # PACKET_OUT that crosses one into a select group (a multipath route) is lost
        # (docs/failover.md).
        for a, b in self.t.links:
            net.addLink(self.bridges[a[0]], self.bridges[b[0]], port1=a[1], port2=b[1],
                        intfName1=self.patch[a], intfName2=self.patch[b], cls=Link)
            self._no_ipv6(self.patch[a])
            self._no_ipv6(self.patch[b])
        for h in self.t.hosts:
            sw, port = h.at
            veth = self.veths[h.name]
            net.addLink(h.name, self.bridges[sw], port1=0, port2=port, intfName1='eth0',
                        intfName2=veth, cls=Link)
            # No IPv6 on the switch side either (router solicitations, DAD).
            self._no_ipv6(veth)
        net.build()
        net.start()
        for h in self.t.hosts:
            run(['ip', 'link', 'set', self.veths[h.name], 'up'])
        self.check_ports()
        self.wait_ready(wait)

    def _no_ipv6(self, ifname):
        p = '/proc/sys/net/ipv6/conf/%s/disable_ipv6' % ifname
        if os.path.exists(p):
            with open(p, 'w') as f:
                f.write('1')

    def _record_shells(self):
        for node in self.net.hosts + self.net.switches + self.net.controllers:
            if node.pid:
                record_pid(node.pid)

    def check_ports(self):
        """Every port got the OpenFlow number the file gives it."""
        want = {self.patch[e]: e[1] for e in self.patch}
        want.update({self.veths[h]: p for h, (_, p) in self.location.items()})
        have = self.ofports()
        bad = ['%s: wanted %d, have %s' % (n, p, have.get(n)) for n, p in want.items()
               if have.get(n) != p]
        if bad:
            hint = ''
            if self.datapath == 'kernel' and not os.path.exists('/sys/module/openvswitch'):
                hint = (' (the kernel datapath needs the openvswitch kernel module, which is '
                        'not loaded; the default --datapath user does not)')
            raise Error('ports not as requested: ' + '; '.join(bad) + hint)

    def ofports(self):
        out = run(VSCTL + ['--format=csv', '--data=bare', '--no-headings',
                           '--columns=name,ofport', 'list', 'interface'])
        have = {}
        for line in out.splitlines():
            name, _, port = line.partition(',')
            try:
                have[name.strip('"')] = int(port)
            except ValueError:
                pass
        return have

    def connected(self, switch):
        out = run(VSCTL + ['get', 'controller', self.bridges[switch], 'is_connected'],
                  check=False)
        return out.strip() == 'true'

    def api_connected(self, switch):
        if self.api is None:
            return self.connected(switch)
        try:
            return any(x['name'] == switch and x['connected'] for x in self.api.switches())
        except Error:
            return False

    def wait_ready(self, timeout):
        """Every switch connected and holding its whole pipeline (the route table's miss entry
        comes last in the plan)."""
        deadline = time.monotonic() + timeout
        for s in self.t.switches:
            while True:
                # OVSDB's is_connected lags by seconds; the controller knows at once.
                if 'table=4, priority=0 actions=drop' in self.dump_flows(s.name) and \
                        self.api_connected(s.name):
                    break
                if time.monotonic() > deadline:
                    raise Error('%s did not get its pipeline from the controller at %s:%d '
                                'within %ds' % (s.name, self.controller[0], self.controller[1],
                                                timeout))
                time.sleep(0.05)

    def stop(self):
        """Removes everything this network created (also on error; idempotent)."""
        if self.stopped:
            return
        self.stopped = True
        for p in self.procs:
            stop_proc(p, signal.SIGKILL)
        self.procs = []
        if self.net is not None:
            net, self.net = self.net, None
            try:
                net.stop()
            except Exception as e:  # noqa: BLE001 - cleanup must go on
                sys.stderr.write('mininet stop: %s\n' % e)
        if _lock is not None:
            try:
                remove_leftovers(processes=False)
            except Error as e:
                sys.stderr.write('cleanup: %s\n' % e)
        if os.environ.get('SSM_KEEP'):
            sys.stderr.write('kept %s (SSM_KEEP)\n' % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    # ---- access

    def host(self, name):
        if self.net is None or name not in self.net.nameToNode or \
                self.t.host(name) is None:
            raise Error('no host %r (hosts: %s)' % (name, ', '.join(h.name for h in self.t.hosts)))
        return self.net[name]

    def switch(self, name):
        if name not in self.bridges:
            raise Error('no switch %r (switches: %s)' % (name, ', '.join(self.bridges)))
        return self.net[self.bridges[name]]

    def dump_flows(self, switch):
        return run(['ovs-ofctl', '-O', 'OpenFlow13', 'dump-flows', '--no-stats',
                    self.bridges[switch]], check=False)

    def tables(self):
        """Every switch's table, lines sorted (to compare before and after)."""
        return {s.name: sorted(l.strip() for l in self.dump_flows(s.name).splitlines()
                               if l.strip()) for s in self.t.switches}

    def popen(self, host, args, **kw):
        """A process in a host, recorded so that it is ended at exit."""
        kw.setdefault('stdin', subprocess.DEVNULL)
        kw.setdefault('stdout', subprocess.DEVNULL)
        kw.setdefault('stderr', subprocess.DEVNULL)
        p = self.host(host).popen(args, **kw)
        record_pid(p.pid)
        self.procs.append(p)
        return p

    def forget(self, proc):
        if proc in self.procs:
            self.procs.remove(proc)

    def host_state(self, name):
        h = self.host(name)
        return (h.cmd('ip -o link show dev eth0 | grep -o "link/ether [0-9a-f:]*"').strip(),
                h.cmd('ip -o -4 addr show dev eth0 | awk \'{print $4}\'').split(),
                h.cmd('ip -4 route show table all').split('\n'))

    def free_port_now(self, switch):
        """The lowest port of the switch that no link and no host uses now."""
        used = {p for (s, p) in self.patch if s == switch}
        used |= {p for (s, p) in self.location.values() if s == switch}
        p = 1
        while p in used:
            p += 1
        return p

    # ---- migration

    def move(self, name, switch, port):
        """Moves the host's interface to SWITCH:PORT in one OVSDB transaction (its namespace,
        address, MAC and routes stay; no flow is touched), like Mininet's examples/mobility.py
        moves an interface, and keeps Mininet's own bookkeeping right."""
        h = self.host(name)
        new = self.switch(switch)
        hintf = h.defaultIntf()
        link = hintf.link
        sintf = link.intf2 if link.intf1 is hintf else link.intf1
        old = sintf.node
        if old is new and old.ports.get(sintf) == port:
            raise Error('%s is already at %s:%d' % (name, switch, port))
        taken = {p for i, p in new.ports.items() if i is not sintf}
        if port in taken or port < 1:
            raise Error('%s:%d is taken' % (switch, port))
        run(VSCTL + ['--', 'del-port', old.name, sintf.name, '--', 'add-port', new.name,
                     sintf.name, '--', 'set', 'interface', sintf.name,
                     'ofport_request=%d' % port])
        oldport = old.ports.pop(sintf)
        old.intfs.pop(oldport, None)
        old.nameToIntf.pop(sintf.name, None)
        new.addIntf(sintf, port=port)
        sintf.node = new
        self.location[name] = (switch, port)
        got = self.ofports().get(sintf.name)
        if got != port:
            raise Error('%s on %s: wanted OpenFlow port %d, got %s' % (sintf.name, new.name,
                                                                       port, got))

    def announce(self, name):
        """One RARP exactly as QEMU sends it after a live migration (net/announce.c): 60
        bytes, broadcast, source MAC the VM, ethertype 0x8035, htype 1, ptype 0x0800, hlen 6,
        plen 4, opcode 3, sender and target hardware address the VM's MAC, both protocol
        addresses 0.0.0.0, zero padding."""
        self.announcer(name).send()

    def announcer(self, name):
        """The RARP of `announce`, made ready to go: a process in the host whose raw socket
        is bound to eth0 and whose frame is built, waiting for a line on its stdin. QEMU
        announces as soon as the VM runs at the destination; starting an interpreter takes
        tens of milliseconds on a busy machine, and done after the port move it would count
        in every measured outage."""
        frame = rarp_frame(self.t.host(name).mac)
        py = ('import socket,sys\n'
              's=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n'
              "s.bind(('eth0',0))\n"
              'f=bytes.fromhex(sys.argv[1])\n'
              "print('ready',flush=True)\n"
              "sys.exit(4) if sys.stdin.readline()!='send\\n' else None\n"
              'sys.exit(0 if s.send(f)==len(f) else 3)\n')
        p = self.host(name).popen([sys.executable, '-c', py, frame.hex()],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        if p.stdout.readline() != b'ready\n':
            p.kill()
            _, err = p.communicate(timeout=10)
            raise Error('RARP from %s: the announcer did not start: %s'
                        % (name, err.decode().strip()))
        return Announcer(name, p)

    def migrate(self, name, switch, port):
        """A live migration as a hypervisor makes it: the interface moves, then the VM sends
        QEMU's RARP at once. Nothing is told to the controller. Fails if anything inside the
        host changed."""
        before = self.host_state(name)
        rarp = self.announcer(name)
        try:
            self.move(name, switch, port)
        except BaseException:
            rarp.cancel()
            raise
        rarp.send()
        after = self.host_state(name)
        if before != after:
            raise Error('moving %s changed it: %s -> %s' % (name, before, after))

    def wait_migrated(self, name, switch, port, since, timeout=10):
        """Waits until the controller's API shows the host at SWITCH:PORT with care-of
        addresses exactly when it is away from home, and its migration counter passed
        `since`. Returns the API's entry for the host."""
        h = self.t.host(name)
        home = self.t.home_switch(h)
        deadline = time.monotonic() + timeout
        seen = None
        while True:
            seen = self.api.host(h.mac)
            if seen and seen['location']['switch'] == switch and \
                    seen['location']['port'] == port and \
                    bool(seen['care_of']) == (switch != home) and \
                    self.api.migrations() > since:
                return seen
            if time.monotonic() > deadline:
                raise Error('the controller did not move %s to %s:%d within %ds (it shows %s)'
                            % (name, switch, port, timeout,
                               seen and (seen['location'], seen['care_of'])))
            time.sleep(0.01)


class Announcer:
    """A RARP armed by `Network.announcer`: `send` sends it, `cancel` drops it unsent."""

    def __init__(self, name, proc):
        self.name = name
        self.proc = proc

    def send(self):
        _, err = self.proc.communicate(b'send\n', timeout=10)
        if self.proc.returncode != 0:
            raise Error('RARP from %s failed: %s' % (self.name, err.decode().strip()))

    def cancel(self):
        self.proc.kill()
        self.proc.communicate(timeout=10)


def rarp_frame(mac):
    m = bytes.fromhex(mac.replace(':', ''))
    assert len(m) == 6, mac
    f = b'\xff' * 6 + m + bytes.fromhex('8035') + bytes.fromhex('0001 0800 06 04 0003')
    f += m + bytes(4) + m + bytes(4)
    return f + bytes(60 - len(f))


def stop_proc(p, sig=signal.SIGTERM, grace=3):
    """Ends one process we started, by its pid; its exit status, or None."""
    if p.poll() is None:
        try:
            p.send_signal(sig)
        except OSError:
            pass
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def on_signals_exit():
    """SIGTERM and SIGHUP end the program through its `finally` and atexit handlers."""
    def handler(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def environment_problem(datapath='user'):
    """Why the network cannot be built here, or None."""
    if os.geteuid() != 0:
        return 'not running as root'
    if datapath == 'user' and not os.path.exists('/dev/net/tun'):
        return '/dev/net/tun is missing (the userspace datapath needs it)'
    for cmd in (VSCTL[:1] + ['--timeout=5', 'show'],
                ['ovs-appctl', '--timeout=5', '-t', 'ovs-vswitchd', 'version'],
                ['ethtool', '--version'],
                ['ping', '-V'], ['mnexec', '-v']):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
        except OSError as e:
            return 'cannot run %s: %s' % (cmd[0], e)
        if p.returncode != 0:
            return '`%s` failed: %s' % (' '.join(cmd), (p.stderr or p.stdout).strip())
    return None
