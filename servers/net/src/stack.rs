//! The smoltcp interface and its one loop: poll the interface with the device's
//! interrupts muted, let the socket table tidy up, then sleep until an interrupt, a socket
//! call, or smoltcp's next timer (`poll_delay`) — never a busy loop.
//!
//! The address comes from DHCP; if none has come within [`DHCP_PATIENCE`], the static
//! configuration from the manifest's arguments is used (and DHCP keeps trying: a lease
//! that comes later replaces it). The DHCP client's socket has a set of its own, looked
//! at only when a DHCP message comes in or its timer is due: in the sockets' set, every
//! egress pass and every `poll_delay` would look at it too.

use alloc::rc::Rc;
use core::cell::{Cell, RefCell};
use core::time::Duration;

use futures_util::future::{Either, select};
use keel_rt::{executor, println, time};
use smoltcp::iface::{
    Config, Interface, PollIngressSingleResult, PollResult, SocketHandle, SocketSet,
};
use smoltcp::socket::{dhcpv4, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, IpCidr, IpEndpoint, Ipv4Address, Ipv4Cidr};

use crate::driver::NetDriver;
use crate::nic::{Nic, Phy};

/// How long DHCP has before the static configuration is used.
pub const DHCP_PATIENCE: Duration = Duration::from_secs(3);
/// The longest the loop sleeps with nothing due: it looks at the fallback timer then.
const IDLE: Duration = Duration::from_secs(1);

/// An address, its prefix and a gateway: the manifest's `static=A.B.C.D/N gateway=A.B.C.D`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticConfig {
    pub address: Ipv4Cidr,
    pub gateway: Option<Ipv4Address>,
}

impl StaticConfig {
    /// From the server's argument string; `Err` names the word it cannot read.
    pub fn from_args(args: &str) -> Result<Option<StaticConfig>, &str> {
        let mut config: Option<StaticConfig> = None;
        let mut gateway = None;
        for word in args.split_whitespace() {
            if let Some(cidr) = word.strip_prefix("static=") {
                let (ip, prefix) = cidr.split_once('/').ok_or(word)?;
                let ip: Ipv4Address = ip.parse().map_err(|_| word)?;
                let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or(word)?;
                config = Some(StaticConfig {
                    address: Ipv4Cidr::new(ip, prefix),
                    gateway: None,
                });
            } else if let Some(ip) = word.strip_prefix("gateway=") {
                gateway = Some(ip.parse().map_err(|_| word)?);
            } else {
                return Err(word);
            }
        }
        Ok(config.map(|config| StaticConfig { gateway, ..config }))
    }
}

/// How the interface is configured now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Configured {
    pub address: Ipv4Cidr,
    pub gateway: Option<Ipv4Address>,
    pub dhcp: bool,
}

pub struct Stack {
    driver: Rc<NetDriver>,
    iface: RefCell<Interface>,
    pub sockets: RefCell<SocketSet<'static>>,
    /// The DHCP client's socket alone, and when it wants to be polled next.
    dhcp_set: RefCell<SocketSet<'static>>,
    dhcp: SocketHandle,
    dhcp_due: Cell<Instant>,
    fallback: Option<StaticConfig>,
    configured: Cell<Option<Configured>>,
    started: Instant,
}

/// Timer ticks in `delay` (at most a second), rounded up: 64-bit arithmetic, where
/// `time::ticks_in`'s 128-bit division is a library call.
fn ticks_in(delay: Duration) -> u64 {
    (delay.as_micros() as u64)
        .saturating_mul(time::tick_hz())
        .div_ceil(1_000_000)
}

/// Now, in smoltcp's terms.
pub fn now() -> Instant {
    Instant::from_millis((time::ticks() * 1000 / time::tick_hz()) as i64)
}

impl Stack {
    /// The stack over a probed driver.
    pub fn new(driver: Rc<NetDriver>, fallback: Option<StaticConfig>) -> Option<Stack> {
        let nic = driver.nic()?;
        let mut config = Config::new(EthernetAddress(nic.mac()).into());
        // Initial sequence numbers and ports differ from boot to boot.
        // SAFETY: RDTSC only reads the counter (the kernel leaves CR4.TSD clear).
        config.random_seed = unsafe { core::arch::x86_64::_rdtsc() };
        let iface = Interface::new(config, &mut Phy(nic), now());
        let mut dhcp_set = SocketSet::new(alloc::vec::Vec::new());
        let dhcp = dhcp_set.add(dhcpv4::Socket::new());
        Some(Stack {
            iface: RefCell::new(iface),
            sockets: RefCell::new(SocketSet::new(alloc::vec::Vec::new())),
            dhcp_set: RefCell::new(dhcp_set),
            dhcp,
            dhcp_due: Cell::new(now()),
            fallback,
            configured: Cell::new(None),
            started: now(),
            driver,
        })
    }

    fn nic(&self) -> &Nic {
        self.driver
            .nic()
            .expect("the stack is made only over a probed driver")
    }

    pub fn driver(&self) -> &NetDriver {
        &self.driver
    }

    pub fn configured(&self) -> Option<Configured> {
        self.configured.get()
    }

    /// Have TCP socket `handle` connect from `local_port` to `remote`.
    pub fn connect(
        &self,
        handle: SocketHandle,
        remote: IpEndpoint,
        local_port: u16,
    ) -> Result<(), tcp::ConnectError> {
        let mut iface = self.iface.borrow_mut();
        let mut sockets = self.sockets.borrow_mut();
        let socket = sockets.get_mut::<tcp::Socket>(handle);
        socket.connect(iface.context(), remote, local_port)
    }

    /// A socket changed (data queued, a close): have the loop poll soon.
    pub fn poke(&self) {
        self.driver.work.raise();
    }

    /// Take in every frame received, then send all the sockets may; how long until
    /// smoltcp wants to be polled again. `syn_taken` runs after each SYN taken in, with
    /// the port it is for, so a listener gets a fresh socket before the next one, and a
    /// burst of connections finds one each.
    pub fn poll(&self, mut syn_taken: impl FnMut(u16)) -> Duration {
        let timestamp = now();
        let nic = self.nic();
        self.iface.borrow_mut().poll_maintenance(timestamp);
        let mut dhcp_news = false;
        loop {
            let dhcp = nic.dhcp_next();
            dhcp_news |= dhcp;
            let set = if dhcp { &self.dhcp_set } else { &self.sockets };
            let ingress = self.iface.borrow_mut().poll_ingress_single(
                timestamp,
                &mut Phy(nic),
                &mut set.borrow_mut(),
            );
            match ingress {
                PollIngressSingleResult::None => break,
                PollIngressSingleResult::PacketProcessed => {}
                PollIngressSingleResult::SocketStateChanged => {
                    if let Some(port) = nic.take_syn() {
                        syn_taken(port);
                    }
                }
            }
        }
        let mut iface = self.iface.borrow_mut();
        let mut sockets = self.sockets.borrow_mut();
        // One pass lets each socket send one frame: pass again while a frame sent may
        // leave its socket more to send, so a socket sends all its window and buffer allow
        // now, not one segment a poll (which cost a poll per segment of a download, and a
        // timer tick before the second segment of a small answer). A pass that would find
        // nothing costs a look at every socket: a request's SYN-ACK and its answer's last
        // segment need none after them.
        nic.take_unfinished();
        while iface.poll_egress(timestamp, &mut Phy(nic), &mut sockets)
            == PollResult::SocketStateChanged
            && nic.take_unfinished()
        {}
        if dhcp_news || timestamp >= self.dhcp_due.get() {
            self.poll_dhcp(&mut iface, timestamp);
        }
        let waited = timestamp - self.started;
        if self.configured.get().is_none()
            && waited >= DHCP_PATIENCE.into()
            && let Some(fallback) = self.fallback
        {
            self.apply(
                &mut iface,
                Configured {
                    address: fallback.address,
                    gateway: fallback.gateway,
                    dhcp: false,
                },
            );
        }
        let dhcp_delay = self.dhcp_due.get() - timestamp.min(self.dhcp_due.get());
        let delay = iface
            .poll_delay(timestamp, &sockets)
            .map_or(dhcp_delay, |delay| delay.min(dhcp_delay));
        Duration::from_micros(delay.total_micros()).min(IDLE)
    }

    /// Let the DHCP client send what it has to and take in what its messages did; note
    /// when it wants to be polled next.
    fn poll_dhcp(&self, iface: &mut Interface, timestamp: Instant) {
        let mut set = self.dhcp_set.borrow_mut();
        iface.poll_egress(timestamp, &mut Phy(self.nic()), &mut set);
        match set.get_mut::<dhcpv4::Socket>(self.dhcp).poll() {
            Some(dhcpv4::Event::Configured(lease)) => self.apply(
                iface,
                Configured {
                    address: lease.address,
                    gateway: lease.router,
                    dhcp: true,
                },
            ),
            // smoltcp reports one at start, before any lease: only a lease lost counts.
            Some(dhcpv4::Event::Deconfigured) if self.configured.get().is_some_and(|c| c.dhcp) => {
                iface.update_ip_addrs(|addrs| addrs.clear());
                iface.routes_mut().remove_default_ipv4_route();
                self.configured.set(None);
                println!("net: the DHCP lease is gone");
            }
            Some(dhcpv4::Event::Deconfigured) | None => {}
        }
        let due = iface.poll_at(timestamp, &set);
        self.dhcp_due
            .set(due.unwrap_or(timestamp + IDLE.into()).max(timestamp));
    }

    fn apply(&self, iface: &mut Interface, config: Configured) {
        iface.update_ip_addrs(|addrs| {
            addrs.clear();
            let _ = addrs.push(IpCidr::Ipv4(config.address));
        });
        match config.gateway {
            Some(gateway) => {
                let _ = iface.routes_mut().add_default_ipv4_route(gateway);
            }
            None => {
                iface.routes_mut().remove_default_ipv4_route();
            }
        }
        self.configured.set(Some(config));
        let how = if config.dhcp {
            "DHCP"
        } else {
            "the static fallback"
        };
        match config.gateway {
            Some(gateway) => println!("net: {} via {gateway}, from {how}", config.address),
            None => println!("net: {}, no gateway, from {how}", config.address),
        }
    }

    /// Poll (`syn_taken` runs after each SYN taken in), let `tidy` look at the sockets,
    /// sleep until there is news or a timer is due; for ever.
    ///
    /// The timer is set again only when smoltcp wants to be polled sooner than it is due
    /// (or it went off): one due later only costs a poll with nothing to do.
    pub async fn run(&self, syn_taken: impl Fn(u16), tidy: impl Fn()) -> ! {
        let mut timer = executor::sleep(IDLE);
        let mut due = time::ticks() + ticks_in(IDLE);
        let nic = self.nic();
        loop {
            nic.set_interrupts(false);
            nic.begin_poll();
            let delay = self.poll(&syn_taken);
            tidy();
            nic.set_interrupts(true);
            if nic.work_left() {
                continue;
            }
            let wanted = time::ticks() + ticks_in(delay).max(1);
            if wanted < due {
                timer = executor::sleep(delay);
                due = wanted;
            }
            let news = core::pin::pin!(self.driver.work.wait());
            if let Either::Right(_) = select(news, &mut timer).await {
                timer = executor::sleep(IDLE);
                due = time::ticks() + ticks_in(IDLE);
            }
        }
    }
}
