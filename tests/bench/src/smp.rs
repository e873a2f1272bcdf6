//! Benchmarks of several cores, run by `cargo boot bench smp` on a two-core guest.
//!
//! `kbench @smp` (under icount): [`SMP`], call round trips to a server thread waiting on
//! the caller's core and on the other one. Under icount QEMU runs every core on one host
//! thread in turn and the TSC counts the instructions of all of them, so a cross-core
//! figure is the work of both cores in the window (both sides' kernel paths, the IPI and
//! its handling), not the latency.
//!
//! `kbench @scaling` (real time, multi-threaded TCG): client threads on one core and then
//! on two, each making [`Op::count`] operations as fast as it can, each with a server of its
//! own on its own core; one `SCALING {json}` line per round with the operations per second
//! of both, which the host turns into the ratio.

use alloc::format;
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use keel_abi::SysInfo;
use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;
use keel_rt::{println, thread};

use crate::benches::{Benchmark, Helper, call};
use crate::clock;
use crate::failure::{Context, Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::roles::{self, label};
use crate::stats::Stats;
use crate::sys::{self, FOREVER};

/// The benchmarks of `kbench @smp`.
pub static SMP: [Benchmark; 2] = [
    Benchmark::micro("same_core_call", same_core_call),
    Benchmark::micro("cross_core_call", cross_core_call),
];

/// `same_core_call`: `port_call_same_as` with the server thread pinned to the caller's
/// core, the reference for [`cross_core_call`] in the same boot.
fn same_core_call(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    with_server_on(measure, page, thread::core())
}

/// `cross_core_call`: the server thread waits on the other core; each call wakes it there
/// (an IPI) and each answer wakes the caller here (another).
fn cross_core_call(measure: &mut Measure, page: &mut IpcPage) -> Result<Stats, Failure> {
    let cores = cores()?;
    with_server_on(measure, page, (thread::core() + 1) % cores)
}

fn cores() -> Result<usize, Failure> {
    let cores = keel_rt::sys::sys_info(SysInfo::Cores).context("sys_info(Cores)")?;
    ensure(cores >= 2, || {
        format!("the SMP benchmarks need two cores, this guest has {cores}")
    })?;
    Ok(cores)
}

fn with_server_on(
    measure: &mut Measure,
    page: &mut IpcPage,
    core: usize,
) -> Result<Stats, Failure> {
    let port = sys::port_create(4).context("creating the port")?;
    let stopped = sys::port_create(1).context("creating the stopped port")?;
    let priority = keel_rt::process::current_priority();
    let server = thread::spawn_on(1 << core, priority, move || {
        if let Err(error) = roles::serve(port, None) {
            println!("kbench: server thread: {error}");
        }
        let _ = sys::port_notify(stopped, 1);
    })
    .context("starting the server thread")?;
    let home = server.thread().info().context("thread_info")?.core as usize;
    ensure(home == core, || {
        format!("the server is on core {home}, not {core}")
    })?;
    let stats = call::echo_calls(measure, page, port, 0);
    call::stop_server(port)?;
    // Waiting blocked, not yielding: under icount one host thread runs the cores in turn,
    // and a core that never halts keeps the other from running for long stretches.
    sys::port_recv(stopped, FOREVER).context("waiting for the server to stop")?;
    sys::cap_delete(port).context("deleting the port")?;
    sys::cap_delete(stopped).context("deleting the stopped port")?;
    stats
}

/// Rounds of one pair then two.
const ROUNDS: usize = 5;

/// What the clients of [`scaling`] do.
#[derive(Clone, Copy)]
enum Op {
    /// A syscall that takes no lock: the emulator's own ceiling.
    NullSyscall,
    /// `sys_info(Pid)`: the smallest syscall through the kernel lock.
    SysInfo,
    /// `port_call` to a server process on the client's core (the fast path).
    Call,
}

impl Op {
    /// Operations each client makes in a round: about a third of a second on one core
    /// under multi-threaded TCG here, long enough that a host thread's time slice taken
    /// by something else is noise rather than the figure.
    fn count(self) -> u64 {
        match self {
            Op::NullSyscall => 4_000_000,
            Op::SysInfo => 2_000_000,
            Op::Call => 50_000,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Op::NullSyscall => "null_syscall",
            Op::SysInfo => "sys_info_pid",
            Op::Call => "port_call_cross_as",
        }
    }

    /// One operation; `port` is the client's server's, for [`Op::Call`].
    #[inline(always)]
    fn once(self, port: Handle) -> Result<(), Failure> {
        match self {
            Op::NullSyscall => match sys::no_syscall() {
                Err(keel_abi::Error::InvalidSyscall) => Ok(()),
                other => Err(Failure(format!("the null syscall answered {other:?}"))),
            },
            Op::SysInfo => keel_rt::sys::sys_info(SysInfo::Pid)
                .map(drop)
                .context("sys_info(Pid)"),
            Op::Call => sys::port_call(port, MessageInfo::new(label::ECHO, 0, 0), [0; 4])
                .map(drop)
                .context("port_call"),
        }
    }
}

/// `kbench @scaling`: every [`Op`], [`ROUNDS`] times one client then two.
pub fn scaling() -> Result<(), Failure> {
    cores()?;
    let tsc_hz = clock::tsc_hz();
    for op in [Op::NullSyscall, Op::SysInfo, Op::Call] {
        for round in 0..ROUNDS {
            let one = run_clients(op, &[0])?;
            let two = run_clients(op, &[0, 1])?;
            println!(
                "SCALING {{\"op\":\"{}\",\"round\":{round},\"one\":{},\"two\":{},\
                 \"two_lock_waits_per_op\":{:.3},\"two_lock_wait_share\":{:.3}}}",
                op.name(),
                one.per_second(tsc_hz),
                two.per_second(tsc_hz),
                two.lock_waits as f64 / two.ops as f64,
                two.lock_waited as f64 / (two.elapsed * 2) as f64,
            );
        }
    }
    Ok(())
}

/// A run of clients: their operations, the TSC cycles from the first one's start to the
/// last one's end, and the kernel lock's waits meanwhile (count and cycles, all cores).
struct Window {
    ops: u64,
    elapsed: u64,
    lock_waits: u64,
    lock_waited: u64,
}

impl Window {
    fn per_second(&self, tsc_hz: u64) -> u64 {
        self.ops * tsc_hz / self.elapsed.max(1)
    }
}

/// The kernel lock's waits since boot: count and cycles.
fn lock_waits() -> Result<(u64, u64), Failure> {
    let info = |kind| keel_rt::sys::sys_info(kind).map(|n| n as u64);
    Ok((
        info(SysInfo::LockWaits).context("sys_info(LockWaits)")?,
        info(SysInfo::LockWaitTsc).context("sys_info(LockWaitTsc)")?,
    ))
}

/// Clients on `cores` (one each, with a server of its own there for [`Op::Call`]), all
/// started together.
fn run_clients(op: Op, cores: &[usize]) -> Result<Window, Failure> {
    let done = sys::port_create(1).context("creating the done port")?;
    let go = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    let mut servers = Vec::new();
    for (i, &core) in cores.iter().enumerate() {
        let port = sys::port_create(4).context("creating a server's port")?;
        if let Op::Call = op {
            servers.push((Helper::spawn_on(roles::SERVE, &[port], 1 << core)?, port));
        }
        let window = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let (start, seen) = (go.clone(), window.clone());
        let priority = keel_rt::process::current_priority();
        let client = thread::spawn_on(1 << core, priority, move || {
            while !start.load(Ordering::Acquire) {
                core::hint::spin_loop();
            }
            let first = clock::now();
            let mut result = Ok(());
            for _ in 0..op.count() {
                result = op.once(port);
                if result.is_err() {
                    break;
                }
            }
            if result.is_ok() {
                seen[0].store(first, Ordering::Relaxed);
                seen[1].store(clock::now(), Ordering::Release);
            }
            let _ = sys::port_notify(done, 1 << i);
        })
        .context("starting a client")?;
        clients.push((client, window, port));
    }
    let waits_before = lock_waits()?;
    go.store(true, Ordering::Release);
    let all = (1u64 << cores.len()) - 1;
    let mut arrived = 0;
    while arrived != all {
        let message = sys::port_recv(done, FOREVER).context("waiting for the clients")?;
        arrived |= message.words[0];
    }
    let waits_after = lock_waits()?;
    for (server, port) in servers {
        call::stop_server(port)?;
        server.finish()?;
    }
    let (mut first, mut last) = (u64::MAX, 0);
    for (client, window, port) in clients {
        client.join();
        let (start, end) = (
            window[0].load(Ordering::Relaxed),
            window[1].load(Ordering::Acquire),
        );
        ensure(end != 0, || format!("a {} client failed", op.name()))?;
        first = first.min(start);
        last = last.max(end);
        sys::cap_delete(port).context("deleting a server's port")?;
    }
    sys::cap_delete(done).context("deleting the done port")?;
    Ok(Window {
        ops: op.count() * cores.len() as u64,
        elapsed: last - first,
        lock_waits: waits_after.0 - waits_before.0,
        lock_waited: waits_after.1 - waits_before.1,
    })
}
