//! What `ktest` and `kchild` agree on: the roles `kchild` plays, the fixed addresses it uses
//! and the exit codes it reports with.
//!
//! `kchild ROLE [ARG]` is started by `ktest` for anything that must happen in another
//! process: faults that end it, spinning while `ktest` watches, checks under fewer rights.
#![no_std]

use keel_abi::Error;

macro_rules! roles {
    ($($(#[doc = $doc:literal])* $role:ident = $name:literal,)*) => {
        /// A job for `kchild`, named by its first argument.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Role {
            $($(#[doc = $doc])* $role,)*
        }

        impl Role {
            /// The role's name on the command line.
            pub fn name(self) -> &'static str {
                match self {
                    $(Role::$role => $name,)*
                }
            }

            /// The role called `name`.
            pub fn parse(name: &str) -> Option<Role> {
                match name {
                    $($name => Some(Role::$role),)*
                    _ => None,
                }
            }
        }
    };
}

roles! {
    /// `loop {}` with no syscalls at all, until killed.
    Spin = "spin",
    /// Exit with the code given as the argument.
    Exit = "exit",
    /// Panic (the runtime exits with 101).
    Panic = "panic",
    /// Start a thread that exits with 7 after 50 ms, then end the main thread with 3.
    LastThreadExits = "last-thread-exits",
    /// With no rights: try to spawn, power off and kill the pid given as the argument;
    /// report the three results with [`encode_results`].
    NoRights = "no-rights",
    /// Read [`UNMAPPED_ADDR`].
    ReadUnmapped = "read-unmapped",
    /// Read [`KERNEL_ADDR`].
    ReadKernel = "read-kernel",
    /// Write [`KERNEL_ADDR`].
    WriteKernel = "write-kernel",
    /// Execute `hlt`.
    Halt = "hlt",
    /// Execute `cli`.
    DisableInterrupts = "cli",
    /// Execute `mov %rax, %cr3`.
    WriteCr3 = "write-cr3",
    /// Execute `out %al, $0x80`.
    PortOut = "port-out",
    /// Execute `ud2`.
    Ud2 = "ud2",
    /// Execute `int3`.
    Int3 = "int3",
    /// Divide by zero with `div`.
    DivideByZero = "divide-by-zero",
    /// Map [`SCRATCH_ADDR`] read-write, put a `ret` there and call it.
    ExecuteData = "execute-data",
    /// Write a byte at `_start` (the ELF entry point).
    WriteCode = "write-code",
    /// Map a page at [`SCRATCH_ADDR`], use it, unmap it, read it again.
    TouchAfterUnmap = "touch-after-unmap",
    /// Map three pages at [`SCRATCH_ADDR`], unmap the middle one, check both ends still
    /// hold their data, then read the middle one.
    SplitUnmap = "split-unmap",
    /// Map a page at [`SCRATCH_ADDR`], write it, make it read-only, check a read, then write.
    WriteAfterProtect = "write-after-protect",
    /// Recurse on a second thread until its stack runs into the runtime's guard page.
    ThreadStackOverflow = "thread-stack-overflow",
}

/// An address nothing maps in `kchild` (not page-aligned, so CR2 is checked to the byte).
pub const UNMAPPED_ADDR: u64 = 0x0000_5555_0000_0123;
/// The kernel's image: mapped, but not for ring 3.
pub const KERNEL_ADDR: u64 = 0xffff_ffff_8010_0000;
/// Where `kchild` makes its fixed mappings.
pub const SCRATCH_ADDR: u64 = 0x0000_4000_0000_0000;

/// `kchild`'s exit code when an instruction that should have faulted did not.
pub const NO_FAULT: i32 = 98;
/// `kchild`'s exit code when it could not set up its role (it prints why).
pub const SETUP_FAILED: i32 = 99;
/// `kchild`'s exit code when a check before the final fault failed (it prints which).
pub const CHECK_FAILED: i32 = 97;

/// What a `kchild` exit code of its own means, if it is one.
pub fn exit_code_meaning(code: i64) -> Option<&'static str> {
    match i32::try_from(code).ok()? {
        NO_FAULT => Some("the instruction did not fault"),
        SETUP_FAILED => Some("it could not set up its role"),
        CHECK_FAILED => Some("a check before the fault failed"),
        _ => None,
    }
}

/// Packs up to four syscall results into an exit code, a byte each: 0 for success, else
/// the error's ABI number.
pub fn encode_results<T>(results: &[Result<T, Error>]) -> i32 {
    results
        .iter()
        .take(4)
        .enumerate()
        .fold(0, |code, (i, result)| {
            let byte = result.as_ref().err().map_or(0, |&error| error as i32);
            code | byte << (8 * i)
        })
}

/// One syscall result as [`encode_results`] reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    Succeeded,
    Failed(Error),
    /// A byte that is no error number.
    Unknown(i64),
}

/// Unpacks result `index` of an exit code made by [`encode_results`].
pub fn decode_result(code: i64, index: usize) -> Reported {
    match (code >> (8 * index)) & 0xff {
        0 => Reported::Succeeded,
        raw => Error::from_raw(raw as isize).map_or(Reported::Unknown(raw), Reported::Failed),
    }
}
