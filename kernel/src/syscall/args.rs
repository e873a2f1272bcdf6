//! A syscall's arguments, decoded in one place: every rule that turns a register into a
//! handle, a process id, a user pointer, a timeout or a message lives here.

use crate::arch::trap::TrapFrame;
use crate::ipc::Sent;
use crate::mm::user::UserSlice;
use crate::proc::Pid;
use keel_abi::Error;
use keel_abi::cap::Handle;
use keel_abi::ipc::MessageInfo;

/// The arguments of a syscall, as the caller left them in rdi, rsi, rdx, r10, r8 and r9,
/// with the rules that decode them: a handler asks for the type it needs.
///
/// It is the saved frame seen through its argument registers only: handlers get `&Args`,
/// which is the frame's address, so arguments are read where the syscall entry saved them
/// (copying them out cost every syscall a dozen instructions). Its field is private to
/// this module: handlers see arguments, never the frame.
#[repr(transparent)]
pub struct Args(TrapFrame);

impl Args {
    #[inline(always)]
    pub(super) fn of(frame: &TrapFrame) -> &Args {
        // SAFETY: `Args` is a `repr(transparent)` wrapper of `TrapFrame`, so the two have one
        // layout, and the reference keeps the frame's lifetime.
        unsafe { &*(frame as *const TrapFrame as *const Args) }
    }

    /// Argument `i` (0 to 5) as it came.
    #[inline(always)]
    fn raw(&self, i: usize) -> u64 {
        let frame = &self.0;
        match i {
            0 => frame.rdi,
            1 => frame.rsi,
            2 => frame.rdx,
            3 => frame.r10,
            4 => frame.r8,
            _ => frame.r9,
        }
    }

    /// Argument `i` as it came.
    #[inline]
    pub fn word(&self, i: usize) -> usize {
        self.raw(i) as usize
    }

    /// Argument `i` as a capability handle: `InvalidHandle` if it cannot be one.
    #[inline]
    pub fn handle(&self, i: usize) -> Result<Handle, Error> {
        Handle::try_from(self.raw(i)).map_err(|_| Error::InvalidHandle)
    }

    /// Argument `i` as a capability handle where 0 means none.
    pub fn optional_handle(&self, i: usize) -> Result<Option<Handle>, Error> {
        match self.raw(i) {
            0 => Ok(None),
            _ => self.handle(i).map(Some),
        }
    }

    /// Argument `i` as a process id: `NotFound` if no process can have it.
    pub fn pid(&self, i: usize) -> Result<Pid, Error> {
        Pid::try_from(self.raw(i)).map_err(|_| Error::NotFound)
    }

    /// A `T` at the user address in argument `i`: an allegation until checked.
    pub fn user<T>(&self, i: usize) -> UserSlice {
        UserSlice::of::<T>(self.word(i))
    }

    /// Argument `i`, nanoseconds, as timer ticks, rounded up.
    pub fn ticks(&self, i: usize) -> u64 {
        crate::sched::ticks_from_nanos(self.raw(i))
    }

    /// Argument `i`, nanoseconds, as a timeout in ticks: `None` (for ever) for `u64::MAX`.
    pub fn timeout(&self, i: usize) -> Option<u64> {
        crate::sched::timeout_ticks(self.raw(i))
    }

    /// The message an IPC syscall sends: its info in rsi and four words in rdx..r9.
    #[inline]
    pub fn sent(&self) -> Sent {
        let frame = &self.0;
        Sent {
            info: MessageInfo(frame.rsi),
            words: [frame.rdx, frame.r10, frame.r8, frame.r9],
        }
    }
}
