//! The validated port-side sections: ports, workers, neighbours.
use crate::lpm::Prefix;
use crate::wire::MacAddr;

#[derive(Debug, Clone, PartialEq)]
pub struct PortConf {
    pub name: String,
    pub device: String,
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    pub mac: Option<MacAddr>,
    pub addr: u32,
    pub prefix_len: u8,
    pub mtu: u16,
}

impl PortConf {
    /// True when `ip` is on this port's subnet.
    pub fn on_link(&self, ip: u32) -> bool {
        let m = Prefix::mask(self.prefix_len);
        ip & m == self.addr & m
    }

    /// The port's connected subnet.
    pub fn subnet(&self) -> Prefix {
        Prefix {
            addr: self.addr & Prefix::mask(self.prefix_len),
            len: self.prefix_len,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkerConf {
    pub core: usize,
    /// (port index, rx queue) pairs.
    pub rx: Vec<(u16, u16)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NeighborConf {
    pub ip: u32,
    pub mac: Option<MacAddr>,
    pub port: u16,
}
