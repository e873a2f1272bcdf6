//! Starting `kchild` (a boot module) in a role, and judging how it ended.

use alloc::format;
use alloc::string::String;

use keel_abi::cap::Handle;
use keel_guest_tests::{Role, exit_code_meaning};
use keel_rt::process::{self, Exit, Fault, Pid, Spawn};

use crate::check::{Context, expect_eq};
use crate::elf;

/// Page-fault error code bits.
pub mod page_fault {
    pub const PRESENT: i64 = 1;
    pub const WRITE: i64 = 2;
    pub const USER: i64 = 4;
    pub const FETCH: i64 = 16;
}

/// `kchild`'s ELF image.
pub fn image() -> Result<&'static [u8], String> {
    keel_rt::boot_module("kchild").context("the `kchild` boot module")
}

/// Starts `kchild ROLE ARG` at this process's priority, with no rights.
pub fn spawn(role: Role, arg: &str) -> Result<Pid, String> {
    spawn_at(role, arg, process::current_priority())
}

/// Starts `kchild ROLE ARG` at `priority`, with no rights.
pub fn spawn_at(role: Role, arg: &str, priority: usize) -> Result<Pid, String> {
    start(role, arg, priority, &[], 0)
}

/// Starts `kchild ROLE ARG` at this process's priority on the cores `cpus` (bit `n` for
/// core `n`).
pub fn spawn_on(role: Role, arg: &str, cpus: u32) -> Result<Pid, String> {
    start(role, arg, process::current_priority(), &[], cpus)
}

/// Starts `kchild ROLE ARG` at this process's priority on the cores `cpus`, with copies of
/// `caps` as its handles `1..`.
pub fn spawn_with_caps_on(
    role: Role,
    arg: &str,
    caps: &[Handle],
    cpus: u32,
) -> Result<Pid, String> {
    start(role, arg, process::current_priority(), caps, cpus)
}

/// Starts `kchild ROLE ARG` at this process's priority, with copies of `caps` as its
/// handles `1..`.
pub fn spawn_with_caps(role: Role, arg: &str, caps: &[Handle]) -> Result<Pid, String> {
    start(role, arg, process::current_priority(), caps, 0)
}

/// Starts `kchild ROLE ARG` at `priority` with copies of `caps`, on the calling thread's
/// core: it runs only when this thread gives way or blocks, as on one core.
pub fn spawn_beside(
    role: Role,
    arg: &str,
    priority: usize,
    caps: &[Handle],
) -> Result<Pid, String> {
    let core = keel_rt::sys::sys_info(keel_abi::SysInfo::Core).context("sys_info(Core)")?;
    start(role, arg, priority, caps, 1 << core)
}

fn start(
    role: Role,
    arg: &str,
    priority: usize,
    caps: &[Handle],
    cpus: u32,
) -> Result<Pid, String> {
    let args = match arg {
        "" => String::from(role.name()),
        arg => format!("{} {arg}", role.name()),
    };
    Spawn::new("kchild", image()?)
        .args(&args)
        .priority(priority)
        .caps(caps)
        .cpus(cpus)
        .spawn()
        .context(&format!("spawning kchild {args}"))
}

/// Runs `kchild ROLE ARG` to its end.
pub fn run(role: Role, arg: &str) -> Result<Exit, String> {
    let pid = spawn(role, arg)?;
    process::wait(pid).context(&format!("waiting for kchild {} (pid {pid})", role.name()))
}

/// Runs `kchild ROLE ARG` and expects it to exit with `code`.
pub fn expect_exit(role: Role, arg: &str, code: i64) -> Result<(), String> {
    let what = format!("how kchild {} {arg} ended", role.name());
    expect_eq(&what, run(role, arg)?, Exit::Exited(code))
}

/// Waits for `kchild ROLE` (`pid`) and expects it to exit with code 0.
pub fn expect_success(pid: Pid, role: Role) -> Result<(), String> {
    let what = format!("waiting for kchild {} (pid {pid})", role.name());
    match process::wait(pid).context(&what)? {
        Exit::Exited(0) => Ok(()),
        other => Err(format!("kchild {}: it {}", role.name(), describe(other))),
    }
}

/// Runs `kchild ROLE` and expects it to fault; checks that the reported `rip` is in
/// `kchild`'s code (or is the faulting address itself, for a fetch) and returns the fault.
pub fn expect_fault(role: Role) -> Result<Fault, String> {
    expect_fault_of(spawn(role, "")?, role)
}

/// Waits for `kchild ROLE` (`pid`) and expects it to fault, as [`expect_fault`] does.
pub fn expect_fault_of(pid: Pid, role: Role) -> Result<Fault, String> {
    let what = format!("waiting for kchild {} (pid {pid})", role.name());
    let fault = match process::wait(pid).context(&what)? {
        Exit::Faulted(fault) => fault,
        other => {
            let ended = describe(other);
            return Err(format!(
                "kchild {}: expected a fault, but it {ended}",
                role.name()
            ));
        }
    };
    let code = elf::code(image()?).context("kchild's executable segment")?;
    if !code.contains(&fault.rip) && fault.rip != fault.address {
        return Err(format!(
            "kchild {}: the fault's rip {:#x} is outside kchild's code {code:#x?}",
            role.name(),
            fault.rip
        ));
    }
    Ok(fault)
}

/// How a `kchild` ended, with the meaning of its own exit codes.
fn describe(exit: Exit) -> String {
    if let Exit::Exited(code) = exit
        && let Some(meaning) = exit_code_meaning(code)
    {
        return format!("{exit}: {meaning} (its output says more)");
    }
    format!("{exit}")
}

/// Runs `kchild ROLE` and expects exactly this CPU exception and error code.
pub fn expect_exception(role: Role, vector: u32, error_code: i64) -> Result<(), String> {
    let fault = expect_fault(role)?;
    let what = format!("kchild {}: (vector, error code)", role.name());
    expect_eq(
        &what,
        (fault.vector, fault.error_code),
        (vector, error_code),
    )
}

/// Runs `kchild ROLE` and expects a page fault at `address` with exactly `error_code`.
pub fn expect_page_fault(role: Role, address: u64, error_code: i64) -> Result<(), String> {
    expect_page_fault_of(spawn(role, "")?, role, address, error_code)
}

/// Waits for `kchild ROLE` (`pid`) and expects a page fault at `address` with exactly
/// `error_code`.
pub fn expect_page_fault_of(
    pid: Pid,
    role: Role,
    address: u64,
    error_code: i64,
) -> Result<(), String> {
    let fault = expect_fault_of(pid, role)?;
    let what = format!(
        "kchild {}: page fault (vector, CR2, error code)",
        role.name()
    );
    expect_eq(
        &what,
        (fault.vector, fault.address, fault.error_code),
        (keel_abi::vector::PAGE_FAULT, address, error_code),
    )
}

/// Kills child `pid` and checks that waiting reports it killed.
pub fn kill_and_reap(pid: Pid) -> Result<(), String> {
    process::kill(pid).context(&format!("killing pid {pid}"))?;
    let exit = process::wait(pid).context(&format!("waiting for killed pid {pid}"))?;
    expect_eq(&format!("how killed pid {pid} ended"), exit, Exit::Killed)
}
