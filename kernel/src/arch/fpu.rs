//! The FPU, SSE and AVX registers, for user threads. The kernel itself never uses them
//! (its target is soft-float), so they hold only user state, and it moves lazily: a switch
//! sets CR0.TS when the thread coming in does not own what the registers hold, and that
//! thread's first FPU, SSE or AVX instruction traps (#NM), where the owner's registers are
//! saved and its own loaded (`kernel::fpu`). A thread that never touches them costs a
//! switch one comparison.
//!
//! Where the CPU has XSAVE and AVX, XCR0 enables x87, SSE and AVX state and XSAVE/XRSTOR
//! move all three (ymm0-15 whole); otherwise AVX stays off (CR4.OSXSAVE clear) and
//! FXSAVE/FXRSTOR move x87 and SSE, which is then everything a user can reach. Either way
//! no register can carry a value from one process to another.

use core::arch::x86_64::__cpuid_count;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

/// Room for the x87, SSE and AVX state in XSAVE's standard format (832 bytes), or FXSAVE's
/// 512; 64-byte aligned as XSAVE needs.
const AREA: usize = 1024;
/// XCR0's state components: x87, SSE, AVX.
const X87_SSE_AVX: u64 = 0b111;

#[repr(C, align(64))]
#[derive(Clone)]
pub struct FpuState([u8; AREA]);

/// The state a thread starts with: after FNINIT, MXCSR at its reset value (all exceptions
/// masked, round to nearest), every register zero.
static INITIAL: spin::Once<FpuState> = spin::Once::new();
/// Whether XSAVE (with AVX) is in use rather than FXSAVE: set once at boot.
static XSAVE: spin::Once<bool> = spin::Once::new();

fn xsave() -> bool {
    *XSAVE.get().expect("FPU enabled at boot")
}

impl FpuState {
    /// A fresh thread's registers.
    pub fn initial() -> FpuState {
        INITIAL.get().expect("FPU enabled at boot").clone()
    }

    /// Save the registers here.
    pub fn save(&mut self) {
        let area = self.0.as_mut_ptr();
        // SAFETY: the area is 64-byte aligned and large enough for every component XCR0
        // enables (checked at boot) or for FXSAVE's 512 bytes; CR0.TS is clear (the caller
        // cleared it), so neither instruction traps.
        unsafe {
            if xsave() {
                core::arch::asm!("xsave64 [{}]", in(reg) area, in("eax") u32::MAX,
                    in("edx") u32::MAX, options(nostack))
            } else {
                core::arch::asm!("fxsave64 [{}]", in(reg) area, options(nostack))
            }
        };
    }

    /// Load the registers from here.
    pub fn restore(&self) {
        let area = self.0.as_ptr();
        // SAFETY: the area holds what XSAVE or FXSAVE wrote (a thread's, or the initial
        // state), so it is well formed (reserved bits clear); aligned, TS clear as for
        // `save`.
        unsafe {
            if xsave() {
                core::arch::asm!("xrstor64 [{}]", in(reg) area, in("eax") u32::MAX,
                    in("edx") u32::MAX, options(nostack, readonly))
            } else {
                core::arch::asm!("fxrstor64 [{}]", in(reg) area, options(nostack, readonly))
            }
        };
    }
}

/// Whether the CPU has XSAVE and AVX, with the three components' area within [`AREA`].
fn has_xsave_avx() -> bool {
    let basic = __cpuid_count(1, 0);
    let (xsave, avx) = (basic.ecx & (1 << 26) != 0, basic.ecx & (1 << 28) != 0);
    if !xsave || !avx || __cpuid_count(0, 0).eax < 0xd {
        return false;
    }
    let components = __cpuid_count(0xd, 0);
    u64::from(components.eax) & X87_SSE_AVX == X87_SSE_AVX && components.ecx as usize <= AREA
}

/// Turn the FPU, SSE (and AVX where there is XSAVE) on for user threads, record the
/// initial state, and leave TS set, so the first use traps.
pub fn enable() {
    let xsave = has_xsave_avx();
    // SAFETY: these bits only enable the FPU, SSE and AVX and select native error reporting;
    // the kernel uses none of them, so nothing it runs changes behaviour. XSETBV is run only
    // with CR4.OSXSAVE set and components the CPU reports.
    unsafe {
        let mut cr0 = Cr0::read();
        cr0.remove(Cr0Flags::EMULATE_COPROCESSOR | Cr0Flags::TASK_SWITCHED);
        cr0.insert(Cr0Flags::MONITOR_COPROCESSOR | Cr0Flags::NUMERIC_ERROR);
        Cr0::write(cr0);
        let mut cr4 = Cr4::read();
        cr4.insert(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE);
        cr4.set(Cr4Flags::OSXSAVE, xsave);
        Cr4::write(cr4);
        if xsave {
            core::arch::asm!("xsetbv", in("ecx") 0, in("eax") X87_SSE_AVX as u32, in("edx") 0,
                options(nomem, nostack));
        }
        core::arch::asm!("fninit", options(nomem, nostack));
    }
    XSAVE.call_once(|| xsave);
    INITIAL.call_once(|| {
        let mut state = FpuState([0; AREA]);
        state.save();
        state
    });
    set_trap(true);
}

/// Which instructions save the registers: for the boot log.
pub fn describe() -> &'static str {
    if xsave() {
        "x87, SSE and AVX, switched lazily with XSAVE"
    } else {
        "x87 and SSE, switched lazily with FXSAVE (no AVX)"
    }
}

/// Set or clear CR0.TS: whether the next FPU, SSE or AVX instruction traps.
pub fn set_trap(on: bool) {
    // SAFETY: TS only makes those instructions trap (#NM), which the kernel never executes;
    // user ones are handled in `kernel::fpu`.
    unsafe {
        if on {
            Cr0::update(|cr0| cr0.insert(Cr0Flags::TASK_SWITCHED));
        } else {
            core::arch::asm!("clts", options(nomem, nostack));
        }
    }
}
