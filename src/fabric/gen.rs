//! `servswitch gen-topology`: large three-tier fabrics for benchmarks and tests.
//!
//! Shape: `cores` core switches; racks grouped in blocks of `racks_per_block`, each block
//! with `agg_per_block` aggregation switches linked to every core; every access switch (one per
//! rack) linked to each aggregation switch of its block. Rack r (from 1) owns 10.H.L.0/24 with
//! H.L = r as a 16-bit number, gateway .1, hosts from .10 on. Port numbers: a core's port k
//! leads to the k-th aggregation switch; an aggregation switch's ports 1..cores lead to the
//! cores, the next ones to its block's racks; an access switch's ports 1..agg lead up, hosts
//! follow.

use std::fmt::Write;

/// The knobs of a generated fabric.
#[derive(Debug, Clone, Copy)]
pub struct GenSpec {
    pub racks: u32,
    pub hosts_per_rack: u32,
    pub cores: u32,
    pub agg_per_block: u32,
    pub racks_per_block: u32,
    /// Dual stack: each rack also gets an IPv6 /64 and each host an IPv6 address.
    pub ipv6: bool,
}

impl Default for GenSpec {
    fn default() -> Self {
        GenSpec {
            racks: 500,
            hosts_per_rack: 40,
            cores: 2,
            agg_per_block: 2,
            racks_per_block: 20,
            ipv6: false,
        }
    }
}

impl GenSpec {
    /// Checks the spec fits the address plan (a /24 per rack, hosts .10 to .254).
    pub fn validate(&self) -> Result<(), String> {
        if self.racks == 0 || self.racks > 65_000 {
            return Err(format!("--racks must be 1 to 65000 (got {})", self.racks));
        }
        if self.hosts_per_rack > 240 {
            return Err(format!(
                "--hosts-per-rack must be at most 240 (got {})",
                self.hosts_per_rack
            ));
        }
        if self.cores == 0 || self.agg_per_block == 0 || self.racks_per_block == 0 {
            return Err("--cores, --agg-per-block and --racks-per-block must be at least 1".into());
        }
        Ok(())
    }

    /// The topology file text.
    pub fn toml(&self) -> String {
        let mut s =
            String::with_capacity(self.racks as usize * (self.hosts_per_rack as usize * 90 + 400));
        let _ = writeln!(
            s,
            "# servswitch gen-topology --racks {} --hosts-per-rack {} --cores {} --agg-per-block {} --racks-per-block {}{}\n",
            self.racks, self.hosts_per_rack, self.cores, self.agg_per_block, self.racks_per_block,
            if self.ipv6 { " --ipv6" } else { "" }
        );
        let blocks = self.racks.div_ceil(self.racks_per_block);
        let mut dpid = 0u64;
        let mut switch = |s: &mut String, name: &str, tier: &str| {
            dpid += 1;
            let _ = writeln!(
                s,
                "[[switch]]\nname = \"{name}\"\ndpid = {dpid}\ntier = \"{tier}\"\n"
            );
        };
        for c in 1..=self.cores {
            switch(&mut s, &format!("c{c}"), "core");
        }
        for b in 0..blocks {
            for a in 1..=self.agg_per_block {
                switch(
                    &mut s,
                    &format!("a{}", b * self.agg_per_block + a),
                    "aggregation",
                );
            }
        }
        for r in 1..=self.racks {
            switch(&mut s, &format!("t{r}"), "access");
        }
        for b in 0..blocks {
            for a in 1..=self.agg_per_block {
                let agg = b * self.agg_per_block + a;
                for c in 1..=self.cores {
                    let _ = writeln!(s, "[[link]]\na = \"c{c}:{agg}\"\nb = \"a{agg}:{c}\"\n");
                }
                let first = b * self.racks_per_block + 1;
                let last = ((b + 1) * self.racks_per_block).min(self.racks);
                for (k, r) in (first..=last).enumerate() {
                    let _ = writeln!(
                        s,
                        "[[link]]\na = \"a{agg}:{}\"\nb = \"t{r}:{a}\"\n",
                        self.cores + 1 + k as u32
                    );
                }
            }
        }
        for r in 1..=self.racks {
            let (hi, lo) = (r >> 8, r & 0xff);
            let _ = write!(
                s,
                "[[subnet]]\nname = \"rack{r}\"\nswitch = \"t{r}\"\nprefix = \"10.{hi}.{lo}.0/24\"\ngateway = \"10.{hi}.{lo}.1\"\n"
            );
            if self.ipv6 {
                // One /64 a rack: fd00:0:0:R::/64 (R in hex), the gateway ::1.
                let _ = write!(
                    s,
                    "prefix6 = \"fd00:0:0:{r:x}::/64\"\ngateway6 = \"fd00:0:0:{r:x}::1\"\n"
                );
            }
            s.push('\n');
            for h in 0..self.hosts_per_rack {
                let v4 = format!("10.{hi}.{lo}.{}", 10 + h);
                let ips = if self.ipv6 {
                    format!("ips = [\"{v4}\", \"fd00:0:0:{r:x}::{:x}\"]", 10 + h)
                } else {
                    format!("ip = \"{v4}\"")
                };
                let _ = writeln!(
                    s,
                    "[[host]]\nname = \"h{r}-{h}\"\nmac = \"02:00:{:02x}:{:02x}:00:{:02x}\"\n{ips}\nat = \"t{r}:{}\"\n",
                    hi,
                    lo,
                    h,
                    self.agg_per_block + 1 + h
                );
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fabric::plan::Fabric;
    use crate::fabric::topology::Topology;

    #[test]
    fn generated_fabrics_validate_and_route() {
        let spec = GenSpec {
            racks: 45,
            hosts_per_rack: 3,
            ..GenSpec::default()
        };
        let t = Topology::parse(&spec.toml()).unwrap();
        assert_eq!(t.switches.len(), 2 + 3 * 2 + 45);
        assert_eq!(t.hosts.len(), 135);
        let f = Fabric::new(&t);
        // Rack 1 to rack 45 crosses blocks: up to aggregation, core, aggregation, down.
        assert_eq!(f.next_hop("t1", "t45"), Some(1));
        assert_eq!(f.next_hop("a1", "t45"), Some(1));
        assert_eq!(f.next_hop("c1", "t45"), Some(5));
        assert_eq!(f.next_hop("a5", "t45"), Some(7));
        // Equal-cost next hops: both uplinks, both cores, both aggregation switches of the
        // far block; one group per far rack, named after it.
        assert_eq!(f.next_hops("t1", "t45"), vec![1, 2]);
        assert_eq!(f.next_hops("a1", "t45"), vec![1, 2]);
        assert_eq!(f.next_hops("c1", "t45"), vec![5, 6]);
        assert_eq!(f.next_hops("a5", "t45"), vec![7]);
        let t45 = t.switches.iter().position(|s| s.name == "t45").unwrap();
        assert_eq!(f.route_group("t1", "t45").unwrap().id, t45 as u32 + 1);
        assert!(f.route_group("a5", "t45").is_none());
        assert_eq!(f.groups("t1").len(), 44, "one per other rack");
        // The far block's aggregation switch a5 loses its link to t45: it goes up to the
        // cores (not down through another rack), the cores leave a5 out, and the group
        // names stay.
        let down = std::collections::BTreeSet::from([("a5".to_string(), 7)]);
        assert!(f.set_unused(&down));
        assert!(!f.set_unused(&down), "the same again changes nothing");
        assert_eq!(f.next_hops("a5", "t45"), vec![1, 2]);
        assert_eq!(f.next_hops("c1", "t45"), vec![6]);
        assert_eq!(f.route_group("c1", "t45").unwrap().ports, vec![6]);
        assert_eq!(f.next_hops("t1", "t45"), vec![1, 2]);
        assert_eq!(f.unused().len(), 2, "both ends");
        // t45 loses its other uplink too: out of reach, its groups empty.
        let both = std::collections::BTreeSet::from([("a5".to_string(), 7), ("a6".to_string(), 7)]);
        assert!(f.set_unused(&both));
        assert!(f.next_hops("t1", "t45").is_empty());
        assert!(f.route_group("t1", "t45").unwrap().ports.is_empty());
        assert!(f.set_unused(&std::collections::BTreeSet::new()));
        assert_eq!(f.next_hops("c1", "t45"), vec![5, 6]);
        assert!(f.unused().is_empty());
        assert!(GenSpec { racks: 0, ..spec }.validate().is_err());
        assert!(GenSpec {
            hosts_per_rack: 241,
            ..spec
        }
        .validate()
        .is_err());
    }
}
