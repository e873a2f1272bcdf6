//! Starting one server with exactly what its manifest entry grants.
//!
//! The child's capabilities, in the order docs/SYSTEM.md promises: handle 1, a badged
//! SEND+GRANT capability to init's port (GRANT so that a registration can carry the
//! server's port); then one capability per `io_ports` range, one per IRQ, the kernel
//! log if `log` is set, and for a `pci` device its configuration page (without ECAM, its
//! configuration capability), its BARs (memory BARs as device memory, I/O BARs as port
//! ranges), its interrupt line and, if it has MSI-X, a vector. Device capabilities are
//! minted for this start and init keeps none: while the server is down nobody owns its
//! device (so the kernel writes the log to the serial line itself again when the console
//! is down).

use alloc::vec::Vec;
use core::fmt;

use keel_abi::Error;
use keel_abi::cap::{FIRST_PROCESS_LOG, Handle, rights};
use keel_manifest::Server;
use keel_rt::driver::pci::FUNCTION_SIZE;
use keel_rt::ipc::Port;
use keel_rt::process::{self, Pid, Spawn};
use keel_rt::{cap, sys};

use crate::badge::Badge;

/// A page: what device memory is granted in.
const PAGE: u64 = 4096;

/// A start that did not happen: what init was doing, and the kernel's answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartError {
    pub doing: &'static str,
    pub error: Error,
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed: {}", self.doing, self.error)
    }
}

trait Doing<T> {
    fn doing(self, doing: &'static str) -> Result<T, StartError>;
}

impl<T> Doing<T> for Result<T, Error> {
    fn doing(self, doing: &'static str) -> Result<T, StartError> {
        self.map_err(|error| StartError { doing, error })
    }
}

/// Starts `server` as a child, its capabilities badged with `badge`, its faults sent to
/// `port` (init's port) from its first instruction, as calls badged for faults; the pid.
pub fn start(server: &Server, badge: Badge, port: Port) -> Result<Pid, StartError> {
    let image = keel_rt::boot_module(&server.program).ok_or(StartError {
        doing: "finding the program's boot module",
        error: Error::NotFound,
    })?;
    let grants = Grants::mint(server, badge, port)?;
    // The kernel checks even an empty argument string's address (kernel/src/mm/space.rs,
    // `check_access`), and an empty String's is dangling (0x1): lend it the name's, which
    // is real memory.
    let args = match server.args.as_str() {
        "" => &server.name[..0],
        args => args,
    };
    let handler = port
        .derive(rights::SEND, badge.for_faults().encode())
        .doing("making the fault handler's capability")?;
    let pid = Spawn::new(&server.name, image)
        .args(args)
        .priority(priority(server))
        .caps(&grants.handles)
        .frames(server.frames)
        .max_processes(server.processes)
        .max_threads(server.threads)
        .cpus(server.cpu_mask())
        .fault_handler(handler)
        .spawn()
        .doing("spawning");
    // The kernel keeps the port and badge, not the capability.
    let _ = handler.delete();
    drop(grants);
    pid
}

/// The manifest's priority, or init's own if that is lower: a child cannot outrank its
/// parent ([`System::new`](crate::System::new) says so once).
fn priority(server: &Server) -> usize {
    server.priority.min(process::current_priority())
}

/// The capabilities a child starts with, in handle order, until the spawn has copied them.
struct Grants {
    handles: Vec<Handle>,
}

impl Grants {
    fn mint(server: &Server, badge: Badge, port: Port) -> Result<Grants, StartError> {
        let mut grants = Grants {
            handles: Vec::new(),
        };
        let init = port
            .derive(rights::SEND | rights::GRANT, badge.encode())
            .doing("making the capability to init")?;
        grants.handles.push(init.handle());
        for ports in &server.io_ports {
            let handle =
                sys::device::ioport_create(ports.base, ports.len).doing("minting I/O ports")?;
            grants.handles.push(handle);
        }
        for &line in &server.irqs {
            let handle = sys::device::irq_create(line).doing("minting an IRQ")?;
            grants.handles.push(handle);
        }
        if server.log {
            grants.handles.push(FIRST_PROCESS_LOG);
        }
        if let Some(wanted) = &server.pci {
            grants.pci(wanted)?;
        }
        Ok(grants)
    }

    /// The first function `wanted` matches: exactly its registers (its configuration page,
    /// or without ECAM a capability to its configuration space), its line and, if it has
    /// MSI-X, a vector.
    fn pci(&mut self, wanted: &keel_manifest::PciMatch) -> Result<(), StartError> {
        let function = crate::pci::find(wanted).ok_or(StartError {
            doing: "finding its PCI device",
            error: Error::NotFound,
        })?;
        let config = match function.config {
            Some(page) => sys::device::mem_create_device(page, FUNCTION_SIZE)
                .doing("minting its PCI configuration page")?,
            None => sys::device::pci_config_create(function.address().into())
                .doing("minting its PCI configuration capability")?,
        };
        self.handles.push(config);
        for &(bar, size) in &function.bars {
            let handle = if bar.io {
                let (base, len) = (u16::try_from(bar.address), u16::try_from(size));
                let (Ok(base), Ok(len)) = (base, len) else {
                    continue;
                };
                sys::device::ioport_create(base, len).doing("minting an I/O BAR")?
            } else if bar.address.is_multiple_of(PAGE) {
                // A BAR smaller than a page still gets the whole page, which nothing
                // else decodes: firmware places BARs page-aligned for that reason.
                let len = size.next_multiple_of(PAGE) as usize;
                sys::device::mem_create_device(bar.address, len).doing("minting a BAR")?
            } else {
                // Its page holds some other device's registers too: not granted.
                continue;
            };
            self.handles.push(handle);
        }
        if let Some(line) = function.line {
            let handle = sys::device::irq_create(line).doing("minting its PCI interrupt")?;
            self.handles.push(handle);
        }
        // One vector: every driver so far takes one. None free: the driver keeps INTx.
        if function.msix
            && let Ok(vector) = sys::device::msi_create()
        {
            self.handles.push(vector);
        }
        Ok(())
    }
}

impl Drop for Grants {
    /// The child has copies (or was never started): init keeps nothing it minted here.
    fn drop(&mut self) {
        for &handle in self.handles.iter().filter(|&&h| h != FIRST_PROCESS_LOG) {
            let _ = cap::delete(handle);
        }
    }
}
