//! Host ports opened to guests: `guest_host_ports` in config.json, and
//! `allow --port` / `deny --port` (kept in net.json, across teardowns).
//! Either opens the port on the gateway address, TCP and UDP.

use crate::netcfg::NetCfg;
use crate::netstate::{self, Intent, Op};
use banger_lib::{Error, Result};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct PortLine {
    pub port: u16,
    pub open: bool,
    /// What opens it: "config" (guest_host_ports) or "allow"; null when closed.
    pub source: Option<&'static str>,
}

fn require() -> Result<()> {
    crate::nft::require("opening host ports to guests")
}

pub fn allow(cfg: &NetCfg, port: u16) -> Result<PortLine> {
    require()?;
    let nl = crate::netlink::Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        st.intend(Intent::new(Op::Ports, None, vec![]))?;
        if !st.open_ports.contains(&port) {
            st.open_ports.push(port);
            st.open_ports.sort_unstable();
        }
        crate::filter::sync_if_present(cfg, st)?;
        let source = if cfg.host_ports.contains(&port) {
            "config"
        } else {
            "allow"
        };
        Ok(PortLine {
            port,
            open: true,
            source: Some(source),
        })
    })
}

pub fn deny(cfg: &NetCfg, port: u16) -> Result<PortLine> {
    require()?;
    if cfg.host_ports.contains(&port) {
        return Err(Error::conflict(format!(
            "port {port} is opened by guest_host_ports in config.json"
        ))
        .with_hint(format!(
            "remove {port} from `guest_host_ports` in {}",
            banger_lib::paths::config_dir()
                .join("config.json")
                .display()
        )));
    }
    let nl = crate::netlink::Nl::new()?;
    netstate::update(cfg, &nl, |st| {
        st.intend(Intent::new(Op::Ports, None, vec![]))?;
        st.open_ports.retain(|p| *p != port);
        crate::filter::sync_if_present(cfg, st)?;
        Ok(PortLine {
            port,
            open: false,
            source: None,
        })
    })
}
