//! The kernel's resource figures before and after a campaign (`fuzz`, `chaos`): whatever
//! the campaign's processes held must be back once they have ended.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use core::time::Duration;

use keel_abi::SysInfo;
use keel_rt::sys;

use crate::check::Context;

/// What must be the same before and after a campaign: the kernel's figures, and this
/// process's own.
#[derive(Debug, PartialEq, Eq)]
pub struct Audit {
    pub free_frames: usize,
    processes: usize,
    threads: usize,
    ports: usize,
    memory_objects: usize,
    capabilities: usize,
    /// This process's capability slots, kernel bytes and frames.
    own: (u64, u64, u64),
}

impl Audit {
    /// The figures once everything outside this process's memory is back as in `before`,
    /// or as they are after a second: a thread that ended on another core is freed by that
    /// core after its next switch, a moment after its process is reaped, so one look just
    /// after a campaign may still count it. A leak stays past the second.
    pub fn settled(before: &Audit) -> Result<Audit, String> {
        let deadline = keel_rt::time::ticks() + keel_rt::time::ticks_in(Duration::from_secs(1));
        loop {
            let now = Audit::take()?;
            if now.outside_own_memory() == before.outside_own_memory()
                || keel_rt::time::ticks() > deadline
            {
                return Ok(now);
            }
            keel_rt::time::sleep(Duration::from_millis(1));
        }
    }

    /// `figure a -> b` for each figure.
    pub fn compare(&self, after: &Audit) -> String {
        let figures = [
            ("free frames", self.free_frames, after.free_frames),
            ("processes", self.processes, after.processes),
            ("threads", self.threads, after.threads),
            ("ports", self.ports, after.ports),
            ("memory objects", self.memory_objects, after.memory_objects),
            ("capabilities", self.capabilities, after.capabilities),
            ("ktest's slots", self.own.0 as usize, after.own.0 as usize),
            ("kernel bytes", self.own.1 as usize, after.own.1 as usize),
            ("frames", self.own.2 as usize, after.own.2 as usize),
        ];
        let parts: Vec<String> = figures
            .iter()
            .map(|(what, a, b)| format!("{what} {a} -> {b}"))
            .collect();
        parts.join(", ")
    }

    /// The figures of everything but this process's own memory: the frames outside it
    /// (free, or held by nobody else: free plus its own) and every kernel object count.
    /// For a campaign whose runner's heap may grow meanwhile, which is its own business.
    pub fn outside_own_memory(&self) -> [usize; 7] {
        [
            self.free_frames + self.own.2 as usize,
            self.processes,
            self.threads,
            self.ports,
            self.memory_objects,
            self.capabilities,
            self.own.0 as usize,
        ]
    }

    pub fn take() -> Result<Audit, String> {
        let figure = |what| sys::sys_info(what).context(&format!("sys_info({what:?})"));
        let own = sys::ipc::resources().context("resources")?;
        Ok(Audit {
            free_frames: figure(SysInfo::FreeFrames)?,
            processes: figure(SysInfo::Processes)?,
            threads: figure(SysInfo::Threads)?,
            ports: figure(SysInfo::Ports)?,
            memory_objects: figure(SysInfo::MemoryObjects)?,
            capabilities: figure(SysInfo::Capabilities)?,
            own: (own.cap_slots_used, own.kernel_bytes_used, own.frames_used),
        })
    }
}
