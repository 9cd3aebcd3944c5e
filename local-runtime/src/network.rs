//! The CNI network of a private containerd: a bridge with a private /16, written as the one conflist
//! in containerd's CNI configuration directory.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CNI bridge network: a bridge name (at most 15 characters) and a private /16.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniNetwork {
    pub bridge: String,
    pub subnet: String,
}

impl CniNetwork {
    pub fn new(bridge: &str, subnet: &str) -> Self {
        assert!(bridge.len() <= 15, "bridge name {bridge:?} is longer than 15 characters");
        Self { bridge: bridge.to_string(), subnet: subnet.to_string() }
    }

    /// The conflist RUNTIME-NOTES found to work: bridge (gateway, masquerade, hairpin, host-local
    /// IPAM with its own data dir and a default route), portmap (hostPorts) and loopback.
    pub fn conflist(&self, ipam_dir: &Path) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "0.4.0",
            "name": format!("gantry-{}", self.bridge),
            "plugins": [
                {
                    "type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": true, "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": ipam_dir.display().to_string(),
                        "ranges": [[{"subnet": self.subnet}]],
                        "routes": [{"dst": "0.0.0.0/0"}]
                    }
                },
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "loopback"}
            ]
        })
    }

    /// Writes the conflist into `containerd_dir/cni-conf` (IPAM state in `containerd_dir/cni-ipam`).
    pub fn write_conflist(&self, containerd_dir: &Path) -> std::io::Result<PathBuf> {
        let conf_dir = containerd_dir.join("cni-conf");
        std::fs::create_dir_all(&conf_dir)?;
        let path = conf_dir.join(format!("10-{}.conflist", self.bridge));
        std::fs::write(&path, self.conflist(&containerd_dir.join("cni-ipam")).to_string())?;
        Ok(path)
    }

    /// Deletes the bridge (CNI never does); a missing bridge is fine.
    pub fn remove_bridge(&self) -> std::io::Result<bool> {
        let out = Command::new("ip").args(["link", "delete", &self.bridge]).output()?;
        Ok(out.status.success())
    }

    /// Deletes the veths still attached to the bridge (the pod ends of sandboxes that were never torn
    /// down through CNI, such as those of a killed runtime), then the bridge.
    pub fn remove(&self) -> std::io::Result<()> {
        let out = Command::new("ip").args(["-o", "link", "show", "master", &self.bridge]).output()?;
        for veth in attached_links(&String::from_utf8_lossy(&out.stdout)) {
            Command::new("ip").args(["link", "delete", &veth]).output()?;
        }
        self.remove_bridge().map(|_| ())
    }
}

/// Interface names in `ip -o link show` output (`3: veth1@if2: <...> ...`).
fn attached_links(ip_output: &str) -> Vec<String> {
    ip_output
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attached_links_are_read_from_ip_output() {
        let out = "12: veth1d9ec841@if2: <BROADCAST,MULTICAST,UP> mtu 1500 master gnapair0 state UP\n\
                   14: vethf7b7faf8@if2: <BROADCAST,MULTICAST,UP> mtu 1500 master gnapair0 state UP\n";
        assert_eq!(attached_links(out), ["veth1d9ec841", "vethf7b7faf8"]);
        assert!(attached_links("").is_empty());
    }

    #[test]
    fn conflist_names_the_bridge_subnet_and_ipam_dir() {
        let net = CniNetwork::new("gnatest0", "10.250.0.0/16");
        let conf = net.conflist(Path::new("/x/ipam"));
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["bridge"], "gnatest0");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.250.0.0/16");
        assert_eq!(bridge["ipam"]["dataDir"], "/x/ipam");
        assert_eq!(conf["plugins"][1]["capabilities"]["portMappings"], true);
        let dir = std::env::temp_dir().join(format!("gantry-net-test-{}", std::process::id()));
        let path = net.write_conflist(&dir).expect("write");
        assert!(std::fs::read_to_string(&path).expect("read").contains("gnatest0"));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    #[should_panic(expected = "longer than 15")]
    fn long_bridge_names_are_refused() {
        CniNetwork::new("a-bridge-name-too-long", "10.0.0.0/16");
    }
}
