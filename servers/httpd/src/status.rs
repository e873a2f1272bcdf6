//! The system's state, gathered once per request, as JSON (`/api/status`) and as the page
//! (`/`): tables, and a bar chart of each process's memory, refreshing every 2 s.

use alloc::collections::BTreeSet;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::{OnceCell, RefCell};
use core::fmt::Write;

use keel_net::NetInfo;
use keel_rt::abi::Error;
use keel_rt::abi::ipc::IpcStats;
use keel_rt::names::{self, Listed};
use keel_rt::time;
use keel_status::{PortStats, Process};

/// What the web server itself counts.
#[derive(Clone, Copy, Debug, Default)]
pub struct Served {
    pub connections: u64,
    pub requests: u64,
    pub refused: u64,
    pub open: u64,
}

/// One look at the system.
pub struct Status {
    pub uptime_ms: u64,
    pub free_frames: u64,
    pub total_frames: u64,
    pub processes: Vec<Process>,
    pub services: Vec<Listed>,
    pub system_ipc: Option<IpcStats>,
    pub ports: Vec<PortStats>,
    pub net: Option<NetInfo>,
    /// The page and the JSON, made once per look.
    html: OnceCell<String>,
    json: OnceCell<String>,
}

/// How long one look serves every request: gathering takes calls to init and the kernel,
/// on the executor's thread, so a burst of requests shares one.
const FRESH_MS: u64 = 250;

/// The last look, and the services init will not let this server look up (asked once:
/// init logs every refusal).
#[derive(Default)]
pub struct Snapshots {
    last: RefCell<Option<(u64, Rc<Status>)>>,
    denied: RefCell<BTreeSet<String>>,
}

impl Snapshots {
    /// A look at most [`FRESH_MS`] old; `net` is asked only for a new one.
    pub async fn get(&self, net: impl Future<Output = Option<NetInfo>>) -> Rc<Status> {
        let now = time::uptime().as_millis() as u64;
        if let Some((at, status)) = &*self.last.borrow()
            && now.saturating_sub(*at) < FRESH_MS
        {
            return status.clone();
        }
        let net = net.await;
        let status = Rc::new(Status::gather(net, &self.denied));
        *self.last.borrow_mut() = Some((now, status.clone()));
        status
    }
}

impl Status {
    /// Look now. A figure that cannot be had is left empty; the page says so.
    fn gather(net: Option<NetInfo>, denied: &RefCell<BTreeSet<String>>) -> Status {
        let (ticks, hz) = keel_status::uptime();
        let (free_frames, total_frames) = keel_status::memory();
        let asked = |name: &str| !denied.borrow().contains(name);
        let (system_ipc, ports) = match keel_status::ipc_stats(asked) {
            Ok((system, ports)) => (Some(system), ports),
            Err(_) => (None, Vec::new()),
        };
        for port in &ports {
            if matches!(port.stats, Err(Error::PermissionDenied)) {
                denied.borrow_mut().insert(port.name.clone());
            }
        }
        Status {
            uptime_ms: ticks * 1000 / hz,
            free_frames,
            total_frames,
            processes: keel_status::processes().unwrap_or_default(),
            services: names::list().unwrap_or_default(),
            system_ipc,
            ports,
            net,
            html: OnceCell::new(),
            json: OnceCell::new(),
        }
    }
}

/// `s` as a JSON string, quotes included.
fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `s` for HTML text.
fn text(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn ip(ip: [u8; 4]) -> String {
    let [a, b, c, d] = ip;
    format!("{a}.{b}.{c}.{d}")
}

fn ipc_json(s: &IpcStats) -> String {
    format!(
        "\"sent\":{},\"received\":{},\"calls\":{},\"replies\":{},\"notifications\":{},\
         \"fast_path_hits\":{},\"fast_path_misses\":{}",
        s.sent,
        s.received,
        s.calls,
        s.replies,
        s.notifications,
        s.fast_path_hits,
        s.fast_path_misses
    )
}

fn net_json(net: &NetInfo) -> String {
    let [a, b, c, d, e, f] = net.mac;
    let address = match net.address {
        Some((address, prefix)) => string(&format!("{}/{prefix}", ip(address))),
        None => "null".into(),
    };
    let gateway = net.gateway.map_or("null".into(), |g| string(&ip(g)));
    format!(
        "{{\"mac\":\"{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}\",\"address\":{address},\
         \"gateway\":{gateway},\"dhcp\":{},\"rx_packets\":{},\"tx_packets\":{},\"rx_bytes\":{},\
         \"tx_bytes\":{},\"interrupts\":{},\"sockets\":{},\"sessions\":{}}}",
        net.dhcp,
        net.rx_packets,
        net.tx_packets,
        net.rx_bytes,
        net.tx_bytes,
        net.interrupts,
        net.sockets,
        net.sessions
    )
}

impl Status {
    /// The JSON: the look's figures, made once, and the server's own counters as they
    /// are now.
    pub fn json(&self, s: Served) -> String {
        format!(
            "{},\"http\":{{\"connections\":{},\"requests\":{},\"refused\":{},\"open\":{}}}}}",
            self.json.get_or_init(|| self.make_json()),
            s.connections,
            s.requests,
            s.refused,
            s.open
        )
    }

    /// The page, the same way.
    pub fn html(&self, s: Served) -> String {
        format!(
            "{}<p class=\"foot\">httpd: {} connections, {} requests, {} refused, {} open &middot; \
             <a href=\"/api/status\">/api/status</a></p>\n</body></html>\n",
            self.html.get_or_init(|| self.make_html()),
            s.connections,
            s.requests,
            s.refused,
            s.open
        )
    }

    fn make_json(&self) -> String {
        let mut out = format!(
            "{{\"uptime_ms\":{},\"memory\":{{\"free_frames\":{},\"total_frames\":{},\"frame_size\":4096}},",
            self.uptime_ms, self.free_frames, self.total_frames
        );
        let processes: Vec<String> = self
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{{\"pid\":{},\"name\":{},\"state\":{},\"threads\":{},\"cpu_ms\":{},\"frames\":{},\"priority\":{}}}",
                    p.pid,
                    string(&p.name),
                    string(p.state),
                    p.threads,
                    p.cpu_ms,
                    p.frames,
                    p.priority
                )
            })
            .collect();
        let _ = write!(out, "\"processes\":[{}],", processes.join(","));
        let services: Vec<String> = self
            .services
            .iter()
            .map(|s| {
                format!(
                    "{{\"name\":{},\"pid\":{},\"state\":{},\"restarts\":{}}}",
                    string(&s.name),
                    s.pid,
                    string(&s.state),
                    s.restarts
                )
            })
            .collect();
        let _ = write!(out, "\"services\":[{}],", services.join(","));
        let system = self
            .system_ipc
            .as_ref()
            .map_or("null".into(), |s| format!("{{{}}}", ipc_json(s)));
        let ports: Vec<String> = self
            .ports
            .iter()
            .map(|port| match &port.stats {
                Ok(s) => format!("{{\"name\":{},{}}}", string(&port.name), ipc_json(s)),
                Err(error) => format!(
                    "{{\"name\":{},\"error\":{}}}",
                    string(&port.name),
                    string(&format!("{error}"))
                ),
            })
            .collect();
        let _ = write!(
            out,
            "\"ipc\":{{\"system\":{system},\"ports\":[{}]}},",
            ports.join(",")
        );
        let net = self.net.as_ref().map_or("null".into(), net_json);
        let _ = write!(out, "\"net\":{net}");
        out
    }

    fn make_html(&self) -> String {
        let mut page = String::from(PAGE_HEAD);
        let seconds = self.uptime_ms / 1000;
        let used = self.total_frames.saturating_sub(self.free_frames);
        let _ = write!(
            page,
            "<p>up {}:{:02}:{:02} &middot; memory {} of {} MiB in use ({used} of {} frames)",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60,
            used * 4 / 1024,
            self.total_frames * 4 / 1024,
            self.total_frames
        );
        if let Some(net) = &self.net {
            let address = net
                .address
                .map_or("unconfigured".into(), |(a, p)| format!("{}/{p}", ip(a)));
            let _ = write!(
                page,
                " &middot; {address} ({}) &middot; {} packets in, {} out",
                if net.dhcp { "DHCP" } else { "static" },
                net.rx_packets,
                net.tx_packets
            );
        }
        page.push_str("</p>\n<h2>Services</h2>\n<table><tr><th>name</th><th>pid</th><th>state</th><th>restarts</th></tr>\n");
        for s in &self.services {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                text(&s.name),
                s.pid,
                text(&s.state),
                text(&s.state),
                s.restarts
            );
        }
        page.push_str("</table>\n<h2>Processes</h2>\n");
        page.push_str(&self.chart());
        page.push_str("<table><tr><th>pid</th><th>name</th><th>state</th><th>threads</th><th>cpu ms</th><th>frames</th><th>prio</th></tr>\n");
        for p in &self.processes {
            let _ = writeln!(
                page,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                p.pid,
                text(&p.name),
                p.state,
                p.threads,
                p.cpu_ms,
                p.frames,
                p.priority
            );
        }
        page.push_str("</table>\n<h2>IPC per port</h2>\n<table><tr><th>port</th><th>sent</th><th>received</th><th>calls</th><th>replies</th><th>notifies</th><th>fast hits</th></tr>\n");
        let rows = self
            .system_ipc
            .as_ref()
            .map(|s| ("(system)", Ok(s)))
            .into_iter()
            .chain(
                self.ports
                    .iter()
                    .map(|p| (p.name.as_str(), p.stats.as_ref())),
            );
        for (name, stats) in rows {
            let _ = match stats {
                Ok(s) => writeln!(
                    page,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    text(name),
                    s.sent,
                    s.received,
                    s.calls,
                    s.replies,
                    s.notifications,
                    s.fast_path_hits
                ),
                Err(error) => writeln!(
                    page,
                    "<tr><td>{}</td><td colspan=\"6\">{}</td></tr>",
                    text(name),
                    text(&format!("{error}"))
                ),
            };
        }
        page.push_str("</table>\n");
        page
    }

    /// Each process's frames as a horizontal bar, scaled to the largest.
    fn chart(&self) -> String {
        const ROW: usize = 18;
        let most = self
            .processes
            .iter()
            .map(|p| p.frames)
            .max()
            .unwrap_or(1)
            .max(1);
        let height = ROW * self.processes.len() + 4;
        let mut svg = format!(
            "<svg width=\"560\" height=\"{height}\" role=\"img\" aria-label=\"frames per process\">\n"
        );
        for (row, p) in self.processes.iter().enumerate() {
            let y = row * ROW + 2;
            let width = (p.frames * 360 / most).max(1);
            let _ = writeln!(
                svg,
                "<text x=\"0\" y=\"{}\">{}</text><rect x=\"130\" y=\"{y}\" width=\"{width}\" height=\"{}\"/>\
                 <text x=\"{}\" y=\"{}\">{} KiB</text>",
                y + 13,
                text(&p.name),
                ROW - 4,
                136 + width,
                y + 13,
                p.frames * 4
            );
        }
        svg.push_str("</svg>\n");
        svg
    }
}

const PAGE_HEAD: &str = "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
<meta http-equiv=\"refresh\" content=\"2\"><title>Keel</title>\n<style>\
body{font:14px system-ui,sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse;margin-bottom:1em}td,th{padding:2px 10px;text-align:right}\
td:nth-child(2),th:nth-child(2),td:first-child,th:first-child{text-align:left}\
tr:nth-child(even){background:#f3f3f3}.running{color:#070}.restarting{color:#b60}\
.stopped,.gave-up{color:#b00}svg text{font:12px sans-serif}rect{fill:#4a7fb5}.foot{color:#777}\
</style></head><body>\n<h1>Keel</h1>\n";
