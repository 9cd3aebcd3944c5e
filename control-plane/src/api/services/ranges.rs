//! The pools Services draw from: the cluster IP range (`--service-cluster-ip-range`, an IPv4 CIDR) and
//! the node port range (`--service-node-port-range`), parsed and checked, and the arithmetic on them:
//! which values may be handed out at all, the well-known addresses (the first for the `kubernetes`
//! Service, the tenth for `kube-dns`), and upstream's split into a static band (kept for requested
//! values) and a dynamic band (tried first for picked values).
//!
//! Pure; must not depend on the store or the HTTP layer.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// Upstream kube-apiserver's default `--service-cluster-ip-range`.
pub const DEFAULT_CLUSTER_IP_RANGE: &str = "10.96.0.0/12";
/// Upstream kube-apiserver's default `--service-node-port-range`.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";
/// The longest prefix accepted: a /28 (16 addresses) still holds the `kubernetes` (first) and
/// `kube-dns` (tenth) addresses with a few to spare.
pub const MAX_PREFIX_LEN: u8 = 28;
/// Offset of the `kubernetes` Service's address from the network address.
const KUBERNETES_OFFSET: u64 = 1;
/// Offset of the `kube-dns` Service's address from the network address.
const DNS_OFFSET: u64 = 10;

/// A range flag that cannot be used; the message names the flag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    #[error("invalid --service-cluster-ip-range {value:?}: {reason}")]
    ClusterIp { value: String, reason: String },
    #[error("invalid --service-node-port-range {value:?}: {reason}")]
    NodePort { value: String, reason: String },
}

impl RangeError {
    /// What is wrong, without the flag and value (clap names those itself).
    pub fn reason(&self) -> &str {
        match self {
            RangeError::ClusterIp { reason, .. } | RangeError::NodePort { reason, .. } => reason,
        }
    }
}

/// An IPv4 CIDR that Service cluster IPs are allocated from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterIpRange {
    base: u32,
    prefix: u8,
}

impl ClusterIpRange {
    /// Parses `A.B.C.D/N`. Host bits are cleared (`10.96.0.5/12` is `10.96.0.0/12`), as upstream's
    /// sloppy CIDR parsing does.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let err = |reason: String| RangeError::ClusterIp { value: s.to_string(), reason };
        let (ip, len) = s.split_once('/').ok_or_else(|| err("expected an IPv4 CIDR such as 10.96.0.0/12".into()))?;
        let ip: IpAddr = ip.parse().map_err(|_| err(format!("{ip:?} is not an IP address")))?;
        let IpAddr::V4(ip) = ip else {
            return Err(err("only IPv4 service ranges are supported (this cluster is single-stack IPv4)".into()));
        };
        let prefix: u8 = len
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| err(format!("{len:?} is not a prefix length between 0 and 32")))?;
        if prefix > MAX_PREFIX_LEN {
            return Err(err(format!(
                "the range is too small: a /{prefix} has {} addresses; at least a /{MAX_PREFIX_LEN} (16 addresses) \
                 is needed to hold the kubernetes (first) and kube-dns (tenth) service IPs",
                1u64 << (32 - prefix)
            )));
        }
        let mask = if prefix == 0 { 0 } else { u32::MAX << (32 - prefix) };
        Ok(Self { base: u32::from(ip) & mask, prefix })
    }

    /// Addresses in the range, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - self.prefix)
    }

    /// The address `offset` after the network address.
    fn at(&self, offset: u64) -> Ipv4Addr {
        Ipv4Addr::from(self.base.wrapping_add(offset as u32))
    }

    fn offset_of(&self, ip: Ipv4Addr) -> Option<u64> {
        let offset = u64::from(u32::from(ip).wrapping_sub(self.base));
        (offset < self.size()).then_some(offset)
    }

    pub fn network(&self) -> Ipv4Addr {
        self.at(0)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        self.at(self.size() - 1)
    }

    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip).is_some()
    }

    /// Whether `ip` can be given to a Service: in the range and neither its network nor its
    /// broadcast address (upstream's allocator covers exactly those).
    pub fn is_assignable(&self, ip: Ipv4Addr) -> bool {
        self.offset_of(ip).is_some_and(|o| o != 0 && o != self.size() - 1)
    }

    /// The `kubernetes` Service's address: the first usable one.
    pub fn kubernetes_ip(&self) -> Ipv4Addr {
        self.at(KUBERNETES_OFFSET)
    }

    /// The `kube-dns` Service's address: the tenth.
    pub fn dns_ip(&self) -> Ipv4Addr {
        self.at(DNS_OFFSET)
    }

    /// Addresses a Service may ask for but that are never picked for one: the `kubernetes` and
    /// `kube-dns` addresses, so a Service created before the bootstrap ones cannot take them.
    pub fn is_well_known(&self, ip: Ipv4Addr) -> bool {
        ip == self.kubernetes_ip() || ip == self.dns_ip()
    }

    /// Number of assignable addresses, and the index ↔ address mapping over them (index 0 is the
    /// first address after the network address).
    pub fn assignable_count(&self) -> u64 {
        self.size() - 2
    }

    pub fn assignable_at(&self, index: u64) -> Ipv4Addr {
        self.at(index + 1)
    }
}

impl fmt::Display for ClusterIpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network(), self.prefix)
    }
}

impl std::str::FromStr for ClusterIpRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The inclusive range of node ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePortRange {
    first: u16,
    last: u16,
}

impl NodePortRange {
    /// Parses `A-B`, `A+N` (A to A+N) or a single port `A`, as upstream's `ParsePortRange`.
    pub fn parse(s: &str) -> Result<Self, RangeError> {
        let err = |reason: String| RangeError::NodePort { value: s.to_string(), reason };
        let port = |p: &str| -> Result<u16, RangeError> {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| err(format!("{p:?} is not a port number between 1 and 65535")))
        };
        let (first, last) = if let Some((a, b)) = s.split_once('-') {
            (port(a)?, port(b)?)
        } else if let Some((a, n)) = s.split_once('+') {
            let first = port(a)?;
            let n: u16 = n.trim().parse().map_err(|_| err(format!("{n:?} is not a port count")))?;
            let last = first.checked_add(n).ok_or_else(|| err("the range ends beyond port 65535".into()))?;
            (first, last)
        } else {
            let p = port(s)?;
            (p, p)
        };
        if first > last {
            return Err(err(format!("the first port {first} is above the last port {last}; expected A-B with A <= B")));
        }
        Ok(Self { first, last })
    }

    pub fn first(&self) -> u16 {
        self.first
    }

    pub fn size(&self) -> u64 {
        u64::from(self.last - self.first) + 1
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn at(&self, index: u64) -> u16 {
        self.first + index as u16
    }
}

impl fmt::Display for NodePortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

impl std::str::FromStr for NodePortRange {
    type Err = RangeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Both pools of one replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceRanges {
    pub cluster_ip: ClusterIpRange,
    pub node_port: NodePortRange,
}

impl Default for ServiceRanges {
    fn default() -> Self {
        Self {
            // 10.96.0.0/12 and 30000-32767, upstream's defaults.
            cluster_ip: ClusterIpRange { base: u32::from(Ipv4Addr::new(10, 96, 0, 0)), prefix: 12 },
            node_port: NodePortRange { first: 30000, last: 32767 },
        }
    }
}

/// Size of upstream's static band at the start of a range of `size` values (`min(max(16, size/16),
/// 256)`, none for ranges of 16 or fewer): picked values avoid it while the rest has room, so values
/// users ask for there are rarely taken already.
pub fn static_band(size: u64) -> u64 {
    if size <= 16 {
        0
    } else {
        (size / 16).clamp(16, 256)
    }
}

/// How many random probes a pick tries before scanning.
const RANDOM_PROBES: usize = 16;

/// Picks an index in `0..count` for which `unavailable` is false: random probes in the dynamic band
/// (`offset..count`), then a scan of it from a random start, then the same in the static band
/// (`0..offset`) — upstream's random-scan-with-offset strategy. `None` when every index is
/// unavailable.
pub fn choose_index(
    count: u64,
    offset: u64,
    rng: &mut impl rand::Rng,
    unavailable: impl Fn(u64) -> bool,
) -> Option<u64> {
    let offset = offset.min(count);
    for (lo, hi) in [(offset, count), (0, offset)] {
        if lo >= hi {
            continue;
        }
        let width = hi - lo;
        for _ in 0..RANDOM_PROBES {
            let i = lo + rng.random_range(0..width);
            if !unavailable(i) {
                return Some(i);
            }
        }
        let start = rng.random_range(0..width);
        if let Some(i) = (0..width).map(|k| lo + (start + k) % width).find(|i| !unavailable(*i)) {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn cluster_ip_ranges_parse_and_refuse_bad_input() {
        let r = ClusterIpRange::parse("10.96.0.0/12").expect("default");
        assert_eq!(r, ServiceRanges::default().cluster_ip);
        assert_eq!(r.to_string(), "10.96.0.0/12");
        assert_eq!((r.network(), r.broadcast()), (Ipv4Addr::new(10, 96, 0, 0), Ipv4Addr::new(10, 111, 255, 255)));
        assert_eq!(r.kubernetes_ip(), Ipv4Addr::new(10, 96, 0, 1));
        assert_eq!(r.dns_ip(), Ipv4Addr::new(10, 96, 0, 10));
        assert_eq!(ClusterIpRange::parse("10.96.7.9/12").expect("host bits").to_string(), "10.96.0.0/12");
        assert_eq!(ClusterIpRange::parse("192.168.5.0/28").expect("smallest").assignable_count(), 14);
        for (bad, why) in [
            ("10.96.0.0", "expected an IPv4 CIDR"),
            ("10.96.0/12", "is not an IP address"),
            ("fd00::/108", "only IPv4"),
            ("10.96.0.0/33", "prefix length"),
            ("10.96.0.0/x", "prefix length"),
            ("10.0.0.0/29", "too small"),
            ("10.0.0.1/32", "too small"),
        ] {
            let e = ClusterIpRange::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid --service-cluster-ip-range"), "{e}");
            assert!(e.reason().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn network_and_broadcast_addresses_are_not_assignable() {
        let r = ClusterIpRange::parse("10.0.0.0/28").expect("range");
        assert!(!r.is_assignable(Ipv4Addr::new(10, 0, 0, 0)));
        assert!(!r.is_assignable(Ipv4Addr::new(10, 0, 0, 15)));
        assert!(r.is_assignable(Ipv4Addr::new(10, 0, 0, 1)));
        assert!(r.is_assignable(Ipv4Addr::new(10, 0, 0, 14)));
        assert!(!r.is_assignable(Ipv4Addr::new(10, 0, 0, 16)));
        assert!(!r.is_assignable(Ipv4Addr::new(9, 255, 255, 255)));
        assert!(r.contains(Ipv4Addr::new(10, 0, 0, 15)));
        assert_eq!(r.assignable_at(0), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(r.assignable_at(r.assignable_count() - 1), Ipv4Addr::new(10, 0, 0, 14));
        assert!(r.is_well_known(Ipv4Addr::new(10, 0, 0, 1)) && r.is_well_known(Ipv4Addr::new(10, 0, 0, 10)));
        assert!(!r.is_well_known(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn node_port_ranges_parse_like_upstream() {
        let r = NodePortRange::parse("30000-32767").expect("default");
        assert_eq!(r, ServiceRanges::default().node_port);
        assert_eq!((r.size(), r.to_string()), (2768, "30000-32767".to_string()));
        assert!(r.contains(30000) && r.contains(32767) && !r.contains(29999) && !r.contains(32768));
        assert_eq!(NodePortRange::parse("30000+9").expect("plus").to_string(), "30000-30009");
        assert_eq!(NodePortRange::parse("31000").expect("single").size(), 1);
        for bad in ["", "a-b", "0-100", "32767-30000", "30000-70000", "65535+1", "-"] {
            let e = NodePortRange::parse(bad).expect_err(bad);
            assert!(e.to_string().starts_with("invalid --service-node-port-range"), "{e}");
        }
    }

    #[test]
    fn static_band_follows_upstream_formula() {
        assert_eq!(static_band(16), 0);
        assert_eq!(static_band(17), 16);
        assert_eq!(static_band(1024), 64);
        assert_eq!(static_band(2768), 173);
        assert_eq!(static_band(1 << 20), 256);
    }

    #[test]
    fn choices_prefer_the_dynamic_band_then_fall_back_to_a_scan() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..200 {
            let i = choose_index(1000, 62, &mut rng, |_| false).expect("free");
            assert!((62..1000).contains(&i), "picked {i} in the static band while the dynamic one has room");
        }
        // Only one free index in the dynamic band: random probes almost surely miss it, the scan finds it.
        let i = choose_index(1000, 62, &mut rng, |i| i != 777 && i >= 62).expect("scan");
        assert!(i == 777 || i < 62);
        assert_eq!(choose_index(1000, 62, &mut rng, |i| i != 777), Some(777));
        // The dynamic band is full: the static band is used.
        assert_eq!(choose_index(1000, 62, &mut rng, |i| i != 5), Some(5));
        assert_eq!(choose_index(1000, 62, &mut rng, |_| true), None);
        assert_eq!(choose_index(0, 0, &mut rng, |_| false), None);
        assert_eq!(choose_index(3, 16, &mut rng, |i| i != 2), Some(2), "an offset beyond the range is clamped");
    }
}
