//! Kernel settings the proxy's rules rely on, set once when the proxy starts (as kube-proxy does):
//! - `net.ipv4.conf.all.route_localnet = 1`: a NodePort on 127.0.0.1 is DNATed to a pod, and the
//!   kernel routes a packet with a loopback source off the host only with it (the rules masquerade
//!   such packets and drop unDNATed traffic from off the host to 127.0.0.0/8);
//! - `net.bridge.bridge-nf-call-iptables = 1`: a pod reaching a Service whose endpoint sits on the
//!   same bridge gets the reply bridged, not routed; without this setting the reply bypasses
//!   conntrack, is not un-DNATed and the client drops it. It exists only with `br_netfilter` loaded.
//!
//! Settings that cannot be written are reported, never fatal: the rest of the proxy still works.

use std::path::{Path, PathBuf};

/// One `/proc/sys` setting and the value the proxy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub path: PathBuf,
    pub value: &'static str,
    /// What breaks without it (for the warning).
    pub needed_for: &'static str,
}

/// What the proxy needs, under `proc_sys` (`/proc/sys`).
pub fn required(proc_sys: &Path) -> Vec<Setting> {
    vec![
        Setting {
            path: proc_sys.join("net/ipv4/conf/all/route_localnet"),
            value: "1",
            needed_for: "NodePorts on 127.0.0.1",
        },
        Setting {
            path: proc_sys.join("net/bridge/bridge-nf-call-iptables"),
            value: "1",
            needed_for: "pods reaching a Service whose endpoint is on their own bridge (load br_netfilter)",
        },
    ]
}

/// Writes each setting that differs; returns a warning for each one that could not be made true.
pub fn apply(settings: &[Setting]) -> Vec<String> {
    let mut warnings = Vec::new();
    for s in settings {
        match std::fs::read_to_string(&s.path) {
            Ok(current) if current.trim() == s.value => {}
            Ok(_) => {
                if let Err(e) = std::fs::write(&s.path, s.value) {
                    warnings.push(format!("cannot set {} to {} ({e}): no {}", s.path.display(), s.value, s.needed_for));
                }
            }
            Err(e) => warnings.push(format!("cannot read {} ({e}): no {}", s.path.display(), s.needed_for)),
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_written_when_they_differ_and_missing_ones_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let settings = required(dir.path());
        std::fs::create_dir_all(settings[0].path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&settings[0].path, "0\n").expect("write");
        let warnings = apply(&settings);
        assert_eq!(std::fs::read_to_string(&settings[0].path).expect("read"), "1");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("bridge-nf-call-iptables") && warnings[0].contains("br_netfilter"));
        assert!(apply(&settings[..1]).is_empty(), "already set");
    }
}
