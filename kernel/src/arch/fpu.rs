//! The FPU and SSE registers, for user threads. The kernel itself never uses them (its
//! target is soft-float), so they hold only user state, and it moves lazily: a switch sets
//! CR0.TS when the thread coming in does not own what the registers hold, and that
//! thread's first FPU or SSE instruction traps (#NM), where the owner's registers are saved
//! and its own loaded (`kernel::fpu`). A thread that never touches them costs a switch one
//! comparison. FXSAVE covers x87, MMX and SSE (xmm0-15, MXCSR); AVX is not enabled
//! (CR4.OSXSAVE stays clear), so its upper halves cannot carry anything between processes.

use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// What FXSAVE writes: 512 bytes, 16-byte aligned.
#[repr(C, align(16))]
#[derive(Clone)]
pub struct FpuState([u8; 512]);

/// The state a thread starts with: after FNINIT, MXCSR at its reset value (all exceptions
/// masked, round to nearest), every register zero.
static INITIAL: spin::Once<FpuState> = spin::Once::new();

impl FpuState {
    /// A fresh thread's registers.
    pub fn initial() -> FpuState {
        INITIAL.get().expect("FPU enabled at boot").clone()
    }

    /// Save the registers here.
    pub fn save(&mut self) {
        // SAFETY: FXSAVE writes 512 bytes to a 16-byte aligned area, which `self` is; CR0.TS
        // is clear (the caller cleared it), so it does not trap.
        unsafe { core::arch::asm!("fxsave64 [{}]", in(reg) self.0.as_mut_ptr(), options(nostack)) };
    }

    /// Load the registers from here.
    pub fn restore(&self) {
        // SAFETY: the area holds what FXSAVE wrote (a thread's, or the initial state), so
        // FXRSTOR accepts it (reserved MXCSR bits clear); aligned, TS clear as for `save`.
        unsafe {
            core::arch::asm!("fxrstor64 [{}]", in(reg) self.0.as_ptr(), options(nostack, readonly))
        };
    }
}

/// Turn the FPU and SSE on for user threads (CR0.EM off, MP and NE on; CR4.OSFXSR and
/// OSXMMEXCPT on), record the initial state, and leave TS set, so the first use traps.
pub fn enable() {
    // SAFETY: these bits only enable the FPU and SSE and select native error reporting;
    // the kernel uses neither, so nothing it runs changes behaviour.
    unsafe {
        let mut cr0 = Cr0::read();
        cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
        cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        Cr0::write(cr0);
        let mut cr4 = Cr4::read();
        cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        Cr4::write(cr4);
        core::arch::asm!("fninit", options(nomem, nostack));
    }
    INITIAL.call_once(|| {
        let mut state = FpuState([0; 512]);
        state.save();
        state
    });
    set_trap(true);
}

/// Set or clear CR0.TS: whether the next FPU or SSE instruction traps.
pub fn set_trap(on: bool) {
    // SAFETY: TS only makes FPU and SSE instructions trap (#NM), which the kernel never
    // executes; user ones are handled in `kernel::fpu`.
    unsafe {
        if on {
            Cr0::update(|cr0| cr0.insert(Cr0Flags::TASK_SWITCHED));
        } else {
            core::arch::asm!("clts", options(nomem, nostack));
        }
    }
}
