//! The benchmarks, in the order they run, and those still waiting for the features they
//! measure.
//!
//! Each benchmark sets up what it needs (ports, memory, a helper process or thread), hands
//! [`Measure::run`] a closure taking one sample, then stops its helpers and checks that the
//! work measured was really done.

pub mod block;
pub mod bulk;
pub mod call;
mod files;
pub mod irq;
mod memcpy;
mod notify;
mod service;
mod syscall;

use alloc::format;
use core::time::Duration;

use keel_abi::cap::Handle;
use keel_rt::bootstrap;
use keel_rt::ipc::Port;
use keel_rt::process::{self, Exit, Pid, Spawn};

use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::stats::Stats;

/// Samples of the microbenchmarks, after their warm-up.
const MICRO_ITERATIONS: usize = 10_000;
const MICRO_WARMUP: usize = 1_000;

/// Sets up, samples through [`Measure::run`], tears down; the IPC page is the main thread's.
pub type Run = fn(&mut Measure, &mut IpcPage) -> Result<Stats, Failure>;

/// A benchmark: how often to sample it and how to take one sample.
pub struct Benchmark {
    pub name: &'static str,
    pub warmup: usize,
    pub iterations: usize,
    /// Operations one sample covers; results are per operation.
    pub ops: u64,
    pub run: Run,
}

impl Benchmark {
    pub const fn micro(name: &'static str, run: Run) -> Self {
        Benchmark {
            name,
            warmup: MICRO_WARMUP,
            iterations: MICRO_ITERATIONS,
            ops: 1,
            run,
        }
    }
}

/// Issue 6's benchmarks first, in their old order (a figure depends a little on what ran
/// before it in the same boot), then those issues 10, 11 and 13 added.
pub static ALL: [Benchmark; 23] = [
    Benchmark::micro("null_syscall", syscall::null_syscall),
    Benchmark::micro("sys_info_pid", syscall::sys_info_pid),
    // Each sample is two switches: there and back.
    Benchmark {
        ops: 2,
        ..Benchmark::micro("yield_cross_as", syscall::yield_cross_as)
    },
    Benchmark::micro("port_call_same_as", call::same_as),
    Benchmark::micro("port_call_same_as_64b", call::same_as_64b),
    Benchmark::micro("port_call_cross_as", call::cross_as),
    Benchmark::micro("port_call_cross_as_64b", call::cross_as_64b),
    Benchmark::micro("notify_roundtrip", notify::roundtrip),
    Benchmark {
        warmup: bulk::WARMUP,
        iterations: bulk::ITERATIONS,
        ..Benchmark::micro("bulk_copy_1mib", bulk::copy)
    },
    // A sample is one call: as many samples as a microbenchmark.
    Benchmark::micro("bulk_zero_copy_1mib", bulk::zero_copy),
    Benchmark::micro("service_call", service::call),
    Benchmark {
        warmup: service::BATCH_WARMUP,
        iterations: service::BATCH_ITERATIONS,
        ops: service::BATCH,
        ..Benchmark::micro("service_call_batch64", service::batch64)
    },
    Benchmark::micro("irq_to_server", irq::to_server),
    Benchmark {
        warmup: bulk::WARMUP,
        iterations: bulk::ITERATIONS,
        ..Benchmark::micro("memcpy_1mib", memcpy::memcpy_1mib)
    },
    Benchmark {
        warmup: service::FEW_WARMUP,
        iterations: service::FEW_ITERATIONS,
        ..Benchmark::micro("service_call_4k", service::call_4k)
    },
    Benchmark {
        warmup: service::THROUGHPUT_WARMUP,
        iterations: service::THROUGHPUT_ITERATIONS,
        ops: service::THROUGHPUT,
        ..Benchmark::micro("service_throughput", service::throughput)
    },
    Benchmark {
        warmup: bulk::WARMUP,
        iterations: bulk::ITERATIONS,
        ..Benchmark::micro("service_vec_1mib", service::vec_1mib)
    },
    Benchmark {
        warmup: service::FEW_WARMUP,
        iterations: service::FEW_ITERATIONS,
        ..Benchmark::micro("service_bulk_1mib", service::bulk_1mib)
    },
    Benchmark::micro("signal_roundtrip", notify::signal_roundtrip),
    // Issue 13: the disk, through the Block service, in busy instructions.
    Benchmark {
        warmup: service::FEW_WARMUP,
        iterations: service::FEW_ITERATIONS,
        ..Benchmark::micro("blk_read_4k", block::read_4k)
    },
    Benchmark {
        warmup: block::SEQ_WARMUP,
        iterations: block::SEQ_ITERATIONS,
        ops: block::SEQ_KIB,
        ..Benchmark::micro("blk_seq_read_16mib", block::seq_read_16mib)
    },
    Benchmark {
        warmup: files::WARMUP,
        iterations: files::ITERATIONS,
        ops: files::KIB,
        ..Benchmark::micro("fs_write_16mib", files::write_16mib)
    },
    Benchmark {
        warmup: files::WARMUP,
        iterations: files::ITERATIONS,
        ops: files::KIB,
        ..Benchmark::micro("fs_read_16mib", files::read_16mib)
    },
];

/// A benchmark that cannot be written until something else exists.
pub struct Later {
    pub name: &'static str,
    pub needs: &'static str,
}

/// Benchmarks still waiting for what they measure, each listed as unavailable in every run
/// (and a miss for `--check`) until it becomes a [`Benchmark`] above. All that issues 6, 10
/// and 11 name are written; the list stays for the next.
pub static LATER: [Later; 0] = [];

/// A helper process: this program's image started in a role.
pub struct Helper {
    pid: Pid,
    role: &'static str,
}

/// How long a service server may take to announce its port.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(10);

impl Helper {
    /// Starts `kbench ROLE` at this process's priority with `caps` as its handles `1..`.
    pub fn spawn(role: &'static str, caps: &[Handle]) -> Result<Helper, Failure> {
        let pid = Self::image()?
            .args(role)
            .caps(caps)
            .spawn()
            .context(&format!("spawning kbench {role}"))?;
        Ok(Helper { pid, role })
    }

    /// Starts `kbench ROLE` as [`spawn`](Self::spawn) does, on the cores `cpus` (bit `n`
    /// for core `n`).
    pub fn spawn_on(role: &'static str, caps: &[Handle], cpus: u32) -> Result<Helper, Failure> {
        let pid = Self::image()?
            .args(role)
            .caps(caps)
            .cpus(cpus)
            .spawn()
            .context(&format!("spawning kbench {role}"))?;
        Ok(Helper { pid, role })
    }

    /// Starts `kbench ROLE` as a service server through [`bootstrap`]: the helper, and a
    /// capability to send to its wake port (to connect to). Blocks the calling thread until
    /// the server has announced itself.
    pub fn start_server(role: &'static str) -> Result<(Helper, Port), Failure> {
        let spawn = Self::image()?.args(role);
        let (pid, port) = bootstrap::start_server(spawn, ANNOUNCE_TIMEOUT)
            .context(&format!("starting kbench {role}"))?;
        Ok((Helper { pid, role }, port))
    }

    /// This program's image, to start again.
    fn image() -> Result<Spawn<'static>, Failure> {
        let image = keel_rt::boot_module(crate::IMAGE)
            .ok_or_else(|| Failure(format!("no `{}` boot module", crate::IMAGE)))?;
        Ok(Spawn::new(crate::IMAGE, image))
    }

    /// Waits for the helper to end, which it must do by exiting with 0.
    pub fn finish(self) -> Result<(), Failure> {
        let exit = process::wait(self.pid).context(&format!("waiting for kbench {}", self.role))?;
        ensure(exit == Exit::Exited(0), || {
            format!("helper kbench {} {exit}", self.role)
        })
    }

    /// Ends a helper that never stops by itself.
    pub fn kill(self) -> Result<(), Failure> {
        process::kill(self.pid).context(&format!("killing kbench {}", self.role))?;
        let exit = process::wait(self.pid).context(&format!("waiting for kbench {}", self.role))?;
        ensure(exit == Exit::Killed, || {
            format!("helper kbench {} {exit} before it was killed", self.role)
        })
    }
}
