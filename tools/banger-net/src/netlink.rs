//! Links, addresses, routes and neighbours over rtnetlink. rtnetlink is
//! async; a current-thread tokio runtime lives here so no other module (and
//! no other crate) sees tokio.

use banger_lib::Error;
use futures_util::TryStreamExt;
use nix::errno::Errno;
use rtnetlink::packet_route::{
    address::AddressAttribute,
    link::{LinkAttribute, LinkMessage},
    neighbour::{NeighbourAddress, NeighbourAttribute, NeighbourMessage},
    route::{RouteAddress, RouteAttribute},
    AddressFamily,
};
use rtnetlink::{Handle, LinkBridge, LinkBridgePort, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr};

pub struct Nl {
    rt: tokio::runtime::Runtime,
    h: Handle,
}

#[derive(Debug, Clone)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub master: Option<u32>,
    pub up: bool,
    /// Its hardware address (IFLA_ADDRESS; empty when it has none).
    pub mac: Vec<u8>,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub oif: Option<u32>,
}

/// The errno of a netlink error (the kernel sends it negated).
fn errno(m: &rtnetlink::packet_core::ErrorMessage) -> Errno {
    Errno::from_raw(-m.raw_code())
}

/// A netlink failure with the exit code its errno deserves.
fn nl_err(what: &str, e: rtnetlink::Error) -> Error {
    if let rtnetlink::Error::NetlinkError(m) = &e {
        let kind_msg = format!("{what}: {}", m.to_io());
        return match errno(m) {
            Errno::EPERM | Errno::EACCES => {
                Error::prereq(kind_msg).with_hint("run it as root (or with CAP_NET_ADMIN)")
            }
            Errno::EEXIST | Errno::EBUSY => Error::conflict(kind_msg),
            Errno::ENODEV | Errno::ENOENT => Error::not_found(kind_msg),
            _ => Error::failed(kind_msg),
        };
    }
    Error::failed(format!("{what}: {e}"))
}

impl Nl {
    pub fn new() -> banger_lib::Result<Nl> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| banger_lib::error::io("starting the netlink runtime", e))?;
        let h = rt.block_on(async {
            let (conn, h, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(h)
        });
        let h = h.map_err(|e| banger_lib::error::io("opening a netlink socket", e))?;
        Ok(Nl { rt, h })
    }

    pub fn links(&self) -> banger_lib::Result<Vec<Link>> {
        let msgs: Vec<LinkMessage> = self
            .rt
            .block_on(self.h.link().get().execute().try_collect())
            .map_err(|e| nl_err("listing links", e))?;
        Ok(msgs.into_iter().map(to_link).collect())
    }

    pub fn link(&self, name: &str) -> banger_lib::Result<Option<Link>> {
        let r: Result<Vec<LinkMessage>, _> = self.rt.block_on(
            self.h
                .link()
                .get()
                .match_name(name.to_string())
                .execute()
                .try_collect(),
        );
        match r {
            Ok(v) => Ok(v.into_iter().next().map(to_link)),
            Err(rtnetlink::Error::NetlinkError(m))
                if matches!(errno(&m), Errno::ENODEV | Errno::ENOENT) =>
            {
                Ok(None)
            }
            Err(e) => Err(nl_err(&format!("looking up {name}"), e)),
        }
    }

    /// Make a bridge with its MAC, in one request: the kernel keeps a MAC
    /// given so (addr_assign_type NET_ADDR_SET) whatever its ports are. It
    /// is made down (rtnetlink's builder would make it up): setup brings
    /// it up once the guests' filter is in.
    pub fn add_bridge(&self, name: &str, mac: [u8; 6]) -> banger_lib::Result<()> {
        let msg = LinkBridge::new(name).down().address(mac.to_vec()).build();
        self.rt
            .block_on(self.h.link().add(msg).execute())
            .map_err(|e| nl_err(&format!("creating bridge {name}"), e))
    }

    /// Set a link's MAC (which the kernel then keeps, as add_bridge's).
    pub fn set_mac(&self, index: u32, mac: [u8; 6]) -> banger_lib::Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        self.rt
            .block_on(self.h.link().set(msg).execute())
            .map_err(|e| nl_err("setting a link's MAC", e))
    }

    pub fn set_up(&self, index: u32) -> banger_lib::Result<()> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt
            .block_on(self.h.link().set(msg).execute())
            .map_err(|e| nl_err("bringing a link up", e))
    }

    /// Attach a port to a bridge and bring it up.
    pub fn attach(&self, index: u32, bridge: u32) -> banger_lib::Result<()> {
        let msg = LinkUnspec::new_with_index(index)
            .controller(bridge)
            .up()
            .build();
        self.rt
            .block_on(self.h.link().set(msg).execute())
            .map_err(|e| nl_err("attaching a TAP to the bridge", e))
    }

    /// A bridge port's isolation (IFLA_BRPORT_ISOLATED): an isolated port
    /// exchanges no frames with another isolated port.
    pub fn set_isolated(&self, index: u32, on: bool) -> banger_lib::Result<()> {
        // Port settings travel in RTM_NEWLINK (RTM_SETLINK ignores them).
        let msg = LinkBridgePort::new(index).isolated(on).build();
        self.rt
            .block_on(self.h.link().set_port(msg).execute())
            .map_err(|e| nl_err("setting a bridge port's isolation", e))
    }

    /// Rename a link; the kernel only renames a link that is down.
    pub fn rename(&self, index: u32, name: &str) -> banger_lib::Result<()> {
        self.rt
            .block_on(async {
                let down = LinkUnspec::new_with_index(index).down().build();
                self.h.link().set(down).execute().await?;
                let ren = LinkUnspec::new_with_index(index)
                    .name(name.to_string())
                    .build();
                self.h.link().set(ren).execute().await?;
                let up = LinkUnspec::new_with_index(index).up().build();
                self.h.link().set(up).execute().await
            })
            .map_err(|e| nl_err(&format!("renaming a link to {name}"), e))
    }

    pub fn del_link(&self, index: u32) -> banger_lib::Result<()> {
        self.rt
            .block_on(self.h.link().del(index).execute())
            .map_err(|e| nl_err("deleting a link", e))
    }

    pub fn addrs_v4(&self, index: u32) -> banger_lib::Result<Vec<(Ipv4Addr, u8)>> {
        let msgs: Vec<_> = self
            .rt
            .block_on(
                self.h
                    .address()
                    .get()
                    .set_link_index_filter(index)
                    .execute()
                    .try_collect(),
            )
            .map_err(|e| nl_err("listing addresses", e))?;
        let mut out = Vec::new();
        for m in msgs {
            for a in &m.attributes {
                if let AddressAttribute::Address(IpAddr::V4(ip)) = a {
                    out.push((*ip, m.header.prefix_len));
                }
            }
        }
        Ok(out)
    }

    pub fn add_addr(&self, index: u32, ip: Ipv4Addr, prefix: u8) -> banger_lib::Result<()> {
        self.rt
            .block_on(
                self.h
                    .address()
                    .add(index, IpAddr::V4(ip), prefix)
                    .execute(),
            )
            .map_err(|e| nl_err(&format!("adding {ip}/{prefix}"), e))
    }

    /// Forget the host's neighbour (ARP) entry for `ip` on link `index`,
    /// whatever its state; none there is no error.
    pub fn del_neighbour(&self, index: u32, ip: Ipv4Addr) -> banger_lib::Result<()> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Inet;
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)));
        match self.rt.block_on(self.h.neighbours().del(msg).execute()) {
            Ok(()) => Ok(()),
            Err(rtnetlink::Error::NetlinkError(m))
                if matches!(errno(&m), Errno::ENOENT | Errno::ESRCH) =>
            {
                Ok(())
            }
            Err(e) => Err(nl_err(&format!("deleting the neighbour entry for {ip}"), e)),
        }
    }

    /// IPv4 routes of the main table.
    pub fn routes_v4(&self) -> banger_lib::Result<Vec<Route>> {
        let req = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<_> = self
            .rt
            .block_on(self.h.route().get(req).execute().try_collect())
            .map_err(|e| nl_err("listing routes", e))?;
        let mut out = Vec::new();
        for m in msgs {
            let mut table = u32::from(m.header.table);
            let mut dst = Ipv4Addr::UNSPECIFIED;
            let mut oif = None;
            for a in &m.attributes {
                match a {
                    RouteAttribute::Table(t) => table = *t,
                    RouteAttribute::Destination(RouteAddress::Inet(d)) => dst = *d,
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    _ => {}
                }
            }
            if table == 254 {
                out.push(Route {
                    dst,
                    prefix: m.header.destination_prefix_length,
                    oif,
                });
            }
        }
        Ok(out)
    }

    pub fn name_of(&self, index: u32) -> banger_lib::Result<Option<String>> {
        Ok(self
            .links()?
            .into_iter()
            .find(|l| l.index == index)
            .map(|l| l.name))
    }
}

fn to_link(m: LinkMessage) -> Link {
    let mut name = String::new();
    let mut master = None;
    let mut mac = Vec::new();
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => name = n.clone(),
            LinkAttribute::Controller(c) => master = Some(*c),
            LinkAttribute::Address(a) => mac = a.clone(),
            _ => {}
        }
    }
    Link {
        index: m.header.index,
        name,
        master,
        up: m
            .header
            .flags
            .contains(rtnetlink::packet_route::link::LinkFlags::Up),
        mac,
    }
}
