//! Moving hosts: a namespace's veth to another port (as a hypervisor moves a VM's tap), and
//! the announcements that go with it (QEMU's RARP in its rounds, a frame armed to go out the
//! moment the port is up).

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::Instant;

use super::sys::*;
use super::OvsFabric;

impl OvsFabric {
    /// Moves a host's veth from its bridge to `to_switch`'s, as OpenFlow port `to_port`, in
    /// one OVSDB transaction. The namespace, MAC, addresses and routes stay as they are (a
    /// live-migrated VM); the old port disappears from the old switch (PORT_STATUS delete)
    /// and the new one appears on the new switch.
    pub fn move_host(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        self.place_port(host, to_switch, to_port)?;
        self.check_port(host, to_switch, to_port)
    }

    /// The move itself: one OVSDB transaction (del-port, add-port with the port number),
    /// which returns once ovs-vswitchd has applied it.
    fn place_port(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        let veth = self.host(host).veth.clone();
        let br = self
            .bridges
            .get(to_switch)
            .ok_or_else(|| format!("no switch {to_switch:?} in the fabric"))?
            .clone();
        vsctl(&[
            "--",
            "--if-exists",
            "del-port",
            &veth,
            "--",
            "add-port",
            &br,
            &veth,
            "--",
            "set",
            "interface",
            &veth,
            &format!("ofport_request={to_port}"),
        ])?;
        Ok(())
    }

    /// Reads back the port number the moved host got (another ovsdb round trip: a
    /// migration sends its announcement before it, as a hypervisor does the moment the VM
    /// runs, not one query later).
    fn check_port(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        let veth = self.host(host).veth.clone();
        let br = self.bridges[to_switch].clone();
        let got = interface_ofports()?.remove(&veth);
        let h = self.hosts.get_mut(host).expect("host exists");
        h.switch = to_switch.to_string();
        match got {
            Some((Some(p), _)) if p == to_port => {
                h.port = to_port;
                Ok(())
            }
            other => {
                if let Some((Some(p), _)) = other {
                    h.port = p;
                }
                Err(format!(
                    "{veth} on {br}: wanted ofport {to_port}, have {other:?}"
                ))
            }
        }
    }

    /// Takes a host's veth off its bridge (the hypervisor deletes the VM's port: the switch
    /// reports the port deleted); [`OvsFabric::plug`] puts it on one again.
    pub fn unplug(&mut self, host: &str) -> Result<(), String> {
        let veth = self.host(host).veth.clone();
        vsctl(&["--", "--if-exists", "del-port", &veth])?;
        Ok(())
    }

    /// Puts an unplugged host's veth on `to_switch`'s bridge as port `to_port`.
    pub fn plug(&mut self, host: &str, to_switch: &str, to_port: u32) -> Result<(), String> {
        self.move_host(host, to_switch, to_port)
    }

    /// A live migration as a hypervisor performs it: [`OvsFabric::move_host`], then one
    /// QEMU self-announce RARP from inside the host, sent the moment the port is on its new
    /// switch (see [`Announcer`]). Fails if the move changed anything inside the host (MAC,
    /// addresses, routes, link state, transmit checksum offload: see
    /// [`OvsFabric::host_state`]).
    pub fn migrate_host(
        &mut self,
        host: &str,
        to_switch: &str,
        to_port: u32,
    ) -> Result<(), String> {
        let before = self.host_state(host)?;
        let rarp = self.announcer(host)?;
        self.place_port(host, to_switch, to_port)?;
        rarp.send()?;
        self.check_port(host, to_switch, to_port)?;
        let after = self.host_state(host)?;
        if before != after {
            return Err(format!(
                "moving {host} changed its namespace:\nbefore {before:?}\nafter  {after:?}"
            ));
        }
        Ok(())
    }

    /// Sends one RARP exactly as QEMU's `net/announce.c` does after a live migration
    /// ([`rarp_frame`] of the host's MAC) from the host's `eth0`, through an AF_PACKET raw
    /// socket inside its namespace.
    pub fn announce(&self, host: &str) -> Result<(), String> {
        self.announcer(host)?.send()
    }

    /// A RARP made ready to go: a process inside the host's namespace whose raw socket is
    /// bound to `eth0` and whose frame is built, waiting for a line on its stdin.
    ///
    /// QEMU announces as soon as the VM runs at the destination. Starting an interpreter in
    /// a namespace takes 40 to 100 ms on a busy two-core machine; done between the port move
    /// and the RARP, that start was part of every measured outage, and varied with the load
    /// (the cause of a flaky "at most two pings lost"). Armed before the move, the RARP leaves
    /// one pipe write after it.
    pub fn announcer(&self, host: &str) -> Result<Announcer, String> {
        let frame = rarp_frame(&self.host(host).mac)?;
        self.armed_frame(host, &frame)
    }

    /// Like [`OvsFabric::migrate_host`], but the host announces itself as QEMU does by default
    /// (`net/announce.c`: five rounds, at about 0, 50, 200, 450 and 800 ms; see
    /// FIELD-NOTES.md): the first RARP the moment the port is on its new switch, the others
    /// in the background; returns once the first went out.
    ///
    /// Why it matters: Open vSwitch's userspace datapath moves a port to its new bridge
    /// asynchronously, in its main thread, after the OVSDB transaction. While another host
    /// floods the datapath, a frame sent right after the move was seen entering through the
    /// *old* port (1 move in 30); one announcement then tells the controller nothing new, and
    /// QEMU's next rounds are what a real VM has.
    pub fn migrate_host_qemu(
        &mut self,
        host: &str,
        to_switch: &str,
        to_port: u32,
    ) -> Result<Instant, String> {
        let frame = rarp_frame(&self.host(host).mac)?;
        let rarp = self.armed_frame_rounds(host, &frame, &[0, 50, 200, 450, 800])?;
        self.place_port(host, to_switch, to_port)?;
        let first = Instant::now();
        rarp.send()?;
        self.check_port(host, to_switch, to_port)?;
        Ok(first)
    }

    /// Sends any frame, whatever its source MAC, from a host's `eth0` (what a tenant that
    /// forges frames can do).
    pub fn send_frame(&self, host: &str, frame: &[u8]) -> Result<(), String> {
        self.armed_frame(host, frame)?.send()
    }

    /// `frame` made ready to go from a host's `eth0` at each of `at_ms` (milliseconds after
    /// the first); [`Announcer::send`] returns once the first went out, the process sends the
    /// rest by itself and exits.
    pub fn armed_frame_rounds(
        &self,
        host: &str,
        frame: &[u8],
        at_ms: &[u64],
    ) -> Result<Announcer, String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let at: Vec<String> = at_ms.iter().map(u64::to_string).collect();
        let py = "import socket,sys,time\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('eth0',0))\n\
                  f=bytes.fromhex(sys.argv[1])\n\
                  at=[int(a)/1000 for a in sys.argv[2].split(',')]\n\
                  print('ready',flush=True)\n\
                  if sys.stdin.readline()!='send\\n': sys.exit(4)\n\
                  t0=time.monotonic()\n\
                  for i,a in enumerate(at):\n\
                  \x20time.sleep(max(0,t0+a-time.monotonic()))\n\
                  \x20n=s.send(f)\n\
                  \x20if i==0: print('sent' if n==len(f) else 'short',flush=True)\n";
        let child = self
            .command(host, &[python3(), "-c", py, &hex, &at.join(",")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("[{host}] cannot start the announcer: {e}"))?;
        let mut a = Announcer {
            host: host.to_string(),
            child: Some(child),
            rounds: true,
        };
        let mut ready = [0u8; 6];
        let read = a
            .child
            .as_mut()
            .and_then(|c| c.stdout.as_mut())
            .expect("stdout is piped")
            .read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            return Err(format!("[{host}] the announcer did not get ready"));
        }
        Ok(a)
    }

    /// `frame` made ready to go from a host's `eth0`: see [`OvsFabric::announcer`].
    pub fn armed_frame(&self, host: &str, frame: &[u8]) -> Result<Announcer, String> {
        let hex: String = frame.iter().map(|b| format!("{b:02x}")).collect();
        let py = "import socket,sys\n\
                  s=socket.socket(socket.AF_PACKET,socket.SOCK_RAW)\n\
                  s.bind(('eth0',0))\n\
                  f=bytes.fromhex(sys.argv[1])\n\
                  print('ready',flush=True)\n\
                  if sys.stdin.readline()!='send\\n': sys.exit(4)\n\
                  n=s.send(f)\n\
                  sys.exit(0 if n==len(f) else 3)\n";
        let mut child = self
            .command(host, &[python3(), "-c", py, &hex])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("[{host}] cannot start the announcer: {e}"))?;
        let mut ready = [0u8; 6];
        let read = child
            .stdout
            .as_mut()
            .expect("stdout is piped")
            .read_exact(&mut ready);
        if read.is_err() || &ready != b"ready\n" {
            let _ = child.kill();
            let out = child.wait_with_output();
            return Err(format!("[{host}] the announcer did not get ready: {out:?}"));
        }
        Ok(Announcer {
            host: host.to_string(),
            child: Some(child),
            rounds: false,
        })
    }
}

/// The frame QEMU sends per NIC after a live migration (`net/announce.c`,
/// `announce_self_create`): broadcast, source MAC = the VM, ethertype 0x8035 (RARP), htype 1,
/// ptype 0x0800, hlen 6, plen 4, opcode 3 (reverse request), sender and target hardware
/// address = the VM's MAC, both protocol addresses 0.0.0.0, zero padding to 60 bytes.
pub fn rarp_frame(mac: &str) -> Result<Vec<u8>, String> {
    let mac: ofp13::MacAddr = mac.parse().map_err(|e| format!("bad MAC {mac:?}: {e}"))?;
    Ok(servswitch::packet::rarp_announce(mac))
}

/// A RARP armed by [`OvsFabric::announcer`]; [`Announcer::send`] sends it. Dropped unsent,
/// it sends nothing: the process is killed.
pub struct Announcer {
    host: String,
    child: Option<Child>,
    /// It sends more than one frame: [`Announcer::send`] returns after the first.
    rounds: bool,
}

impl Announcer {
    /// Sends the frame and waits for the process to say it went out whole.
    pub fn send(mut self) -> Result<(), String> {
        let mut child = self.child.take().expect("sent once");
        let what = format!("[{}] announce", self.host);
        let written = child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(b"send\n");
        if self.rounds {
            let mut sent = [0u8; 5];
            let read = child
                .stdout
                .as_mut()
                .expect("stdout is piped")
                .read_exact(&mut sent);
            // The rest of the rounds go out by themselves; a thread reaps the process.
            std::thread::spawn(move || child.wait());
            written.map_err(|e| format!("{what}: {e}"))?;
            return match read {
                Ok(()) if &sent == b"sent\n" => Ok(()),
                _ => Err(format!("{what}: the first frame did not go out whole")),
            };
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("{what}: {e}"))?;
        written.map_err(|e| format!("{what}: {e}"))?;
        output_result(&what, out).map(|_| ())
    }
}

impl Drop for Announcer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
