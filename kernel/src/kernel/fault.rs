//! CPU exceptions raised in ring 3: the faulting process's business, never the kernel's.
//!
//! With a fault handler (a port set by `fault_handler_set`), the faulting thread stops and a
//! fault message (vector, error code, rip, CR2, and a capability to the thread for reading
//! and changing its registers) goes to the handler with a reply; the answer resumes the
//! thread (optionally at a new rip) or ends the process. Without one, or
//! when the handler cannot take the message or dies, the process ends: the log names the
//! fault, and the parent's `process_wait` gets the same facts.
//!
//! This is not a syscall handler: it runs on an exception's trap frame, so it reads and
//! writes that frame itself, and it keeps the registers of a stopped thread, the one time
//! all of them are saved ([`Kernel::stopped_registers`]).

use super::{Kernel, kernel};
use crate::arch::trap::{TrapFrame, exception_name};
use crate::cap::Object;
use crate::ipc::{Delivery, Message, ReplyRef};
use crate::sched::thread::{ThreadState, Tid};
use keel_abi::cap::rights;
use keel_abi::ipc::{FAULT_RESUME, LABEL_FAULT, MessageInfo};
use keel_abi::thread::{Registers, USER_FLAGS};
use keel_abi::{Error, ExitStatus, exit_kind, layout, vector};

// Rare: kept out of the interrupt dispatcher, so that every interrupt does not pay for its
// registers.
#[inline(never)]
pub fn user_fault(frame: &mut TrapFrame) {
    let address = if frame.vector == vector::PAGE_FAULT as u64 {
        crate::arch::read_cr2()
    } else {
        0
    };
    let status = ExitStatus {
        kind: exit_kind::FAULTED,
        vector: frame.vector as u32,
        code: frame.error_code as i64,
        rip: frame.rip,
        address,
    };
    let handled = {
        let mut k = kernel();
        if k.running_is_gone() {
            super::switch::leave_for_good(k);
        }
        let sent = send_to_handler(&mut k, &status);
        if !sent {
            end_faulted(&mut k, frame, &status);
        }
        sent
    };
    super::switch::reschedule();
    let mut k = kernel();
    if k.running_is_gone() {
        super::switch::leave_for_good(k);
    }
    if handled && resumed(&mut k, frame) {
        return;
    }
    end_faulted(&mut k, frame, &status);
    drop(k);
    super::switch::reschedule();
    unreachable!("a faulted thread that is not resumed never runs again");
}

/// Send the fault to the process's handler and block the thread for the answer.
fn send_to_handler(k: &mut Kernel, status: &ExitStatus) -> bool {
    let pid = k.current_pid();
    let Some((port, badge)) = k.processes.get(&pid).and_then(|p| p.fault_handler()) else {
        return false;
    };
    let tid = k.sched.current();
    let thread = k.threads.get_mut(&tid).expect("running thread");
    let seq = thread.next_seq();
    let mut message = Message {
        badge,
        info: MessageInfo::new(LABEL_FAULT, 0, 1).0,
        words: [
            status.vector as u64,
            status.code as u64,
            status.rip,
            status.address,
        ],
        reply: Some(ReplyRef {
            caller: tid,
            seq,
            port,
        }),
        sender: pid,
        ..Message::default()
    };
    let thread_cap = k.cap_mint_in_flight(Object::Thread(tid), rights::READ | rights::MANAGE);
    let _ = message.caps.push(thread_cap);
    match k.deliver(port, message) {
        Ok(()) => {
            k.block_current(ThreadState::Faulted(seq));
            true
        }
        Err((_, message)) => {
            // The reply it carries is ours: dropping it must not wake us.
            let message = Message {
                reply: None,
                ..message
            };
            k.discard_message(message);
            false
        }
    }
}

/// The handler answered: resume unless it said otherwise.
fn resumed(k: &mut Kernel, frame: &mut TrapFrame) -> bool {
    let tid = k.sched.current();
    let Some(Delivery::Message(answer)) = k.threads.get_mut(&tid).and_then(|t| t.take_inbox())
    else {
        return false;
    };
    let [verdict, new_rip, ..] = answer.words;
    k.discard_message(answer);
    if verdict != FAULT_RESUME {
        return false;
    }
    if new_rip != 0 {
        if !(layout::USER_START as u64..layout::USER_END as u64).contains(&new_rip) {
            return false;
        }
        frame.rip = new_rip;
    }
    true
}

fn end_faulted(k: &mut Kernel, frame: &TrapFrame, status: &ExitStatus) {
    let tid = k.sched.current();
    crate::kprintln!(
        "{} faulted: {} (vector {}, error {:#x}) at rip {:#x}, address {:#x}, rsp {:#x}; process ended",
        k.describe_thread(tid),
        exception_name(frame.vector),
        frame.vector,
        frame.error_code,
        status.rip,
        status.address,
        frame.rsp,
    );
    let pid = k.current_pid();
    let name = k.processes.get(&pid).map_or("", |p| p.name());
    let stack = UserStack(k.current_space(), frame.rsp as usize);
    crate::kprintln!("stack scan of {name}: {:#x}{stack}", status.rip);
    k.end_process(pid, *status);
}

/// Return addresses a faulted thread's stack may hold, each written with a space before it:
/// the words near its stack pointer that point into executable memory (a scan, since
/// programs keep no frame pointers; `bootimage` names the functions from the program's
/// symbols).
struct UserStack<'a>(&'a crate::mm::space::AddressSpace, usize);

/// Stack words scanned, and candidates printed at most.
const SCANNED: usize = 256;
const SHOWN: usize = 16;

impl core::fmt::Display for UserStack<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let UserStack(space, rsp) = *self;
        let mut shown = 0;
        for i in 0..SCANNED {
            let at = rsp.wrapping_add(i * 8);
            // A stack word the thread cannot read ends the scan: a fault here is a user's.
            let Ok(word) = crate::mm::user::UserSlice::of::<u64>(at).read_value::<u64>(space)
            else {
                break;
            };
            if space.is_executable(word as usize) {
                write!(f, " {word:#x}")?;
                shown += 1;
                if shown == SHOWN {
                    break;
                }
            }
        }
        Ok(())
    }
}

impl Kernel {
    /// The trap frame of thread `tid` if it is stopped at a fault: the only time all its
    /// registers are saved.
    fn stopped_frame(&mut self, tid: Tid) -> Result<&mut TrapFrame, Error> {
        let thread = &self.threads[&tid];
        if !matches!(thread.state(), ThreadState::Faulted(_)) {
            return Err(Error::NotStopped);
        }
        // SAFETY: a thread stopped at a fault is blocked in the kernel's fault path, so the
        // top of its kernel stack holds the full frame its exception entry saved; the kernel
        // lock, held through the returned borrow, keeps it from running meanwhile.
        Ok(unsafe { &mut *thread.saved_user_frame() })
    }

    /// The registers of thread `tid`, stopped at a fault (`NotStopped` otherwise).
    pub fn stopped_registers(&mut self, tid: Tid) -> Result<Registers, Error> {
        let saved = self.stopped_frame(tid)?;
        Ok(Registers {
            rax: saved.rax,
            rbx: saved.rbx,
            rcx: saved.rcx,
            rdx: saved.rdx,
            rsi: saved.rsi,
            rdi: saved.rdi,
            rbp: saved.rbp,
            rsp: saved.rsp,
            r8: saved.r8,
            r9: saved.r9,
            r10: saved.r10,
            r11: saved.r11,
            r12: saved.r12,
            r13: saved.r13,
            r14: saved.r14,
            r15: saved.r15,
            rip: saved.rip,
            rflags: saved.rflags,
        })
    }

    /// Set the registers of thread `tid`, stopped at a fault (`NotStopped` otherwise); of
    /// rflags only the bits user space may change.
    pub fn set_stopped_registers(&mut self, tid: Tid, regs: &Registers) -> Result<(), Error> {
        let saved = self.stopped_frame(tid)?;
        let kernel_flags = saved.rflags & !USER_FLAGS;
        *saved = TrapFrame {
            rax: regs.rax,
            rbx: regs.rbx,
            rcx: regs.rcx,
            rdx: regs.rdx,
            rsi: regs.rsi,
            rdi: regs.rdi,
            rbp: regs.rbp,
            rsp: regs.rsp,
            r8: regs.r8,
            r9: regs.r9,
            r10: regs.r10,
            r11: regs.r11,
            r12: regs.r12,
            r13: regs.r13,
            r14: regs.r14,
            r15: regs.r15,
            rip: regs.rip,
            rflags: kernel_flags | (regs.rflags & USER_FLAGS),
            ..*saved
        };
        Ok(())
    }
}
