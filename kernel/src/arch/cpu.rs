//! CPU features and the control-register settings Keel depends on.

use core::arch::x86_64::__cpuid;
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};

#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub smep: bool,
    pub smap: bool,
    pub pcid: bool,
    pub tsc_deadline: bool,
    pub global_pages: bool,
}

pub fn features() -> Features {
    // Leaf 7 is only read when leaf 0 reports it.
    let max = __cpuid(0).eax;
    let ext = if max >= 7 { __cpuid(7).ebx } else { 0 };
    let basic = __cpuid(1);
    Features {
        smep: ext & (1 << 7) != 0,
        smap: ext & (1 << 20) != 0,
        pcid: basic.ecx & (1 << 17) != 0,
        tsc_deadline: basic.ecx & (1 << 24) != 0,
        global_pages: basic.edx & (1 << 13) != 0,
    }
}

/// This core's local APIC id, as the CPU reports it at reset.
pub fn initial_apic_id() -> u32 {
    __cpuid(1).ebx >> 24
}

/// Turn on the protections the CPU offers. The FPU, SSE and AVX are `fpu::enable`'s.
pub fn enable_protections(features: &Features) {
    let mut cr4 = Cr4::read();
    if features.smep {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION);
    }
    if features.smap {
        cr4.insert(Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION);
    }
    if features.global_pages {
        cr4.insert(Cr4Flags::PAGE_GLOBAL);
    }
    // SAFETY: only protection features the CPU reports are enabled (the FPU and SSE are
    // `fpu::enable`'s business).
    unsafe {
        Cr4::write(cr4);
        Cr0::update(|cr0| cr0.insert(Cr0Flags::WRITE_PROTECT));
    }
}

pub fn read_tsc() -> u64 {
    // SAFETY: RDTSC has no side effects; CR4.TSD is clear.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Run `f` with user pages accessible to the kernel (SMAP's AC flag set), then clear it.
pub fn with_user_access<R>(f: impl FnOnce() -> R) -> R {
    let smap = crate::arch::cpu_features().smap;
    if smap {
        // SAFETY: STAC only sets RFLAGS.AC; it exists because the CPU reports SMAP. No
        // `nomem`: the asm must order the user-memory accesses that follow it.
        unsafe { core::arch::asm!("stac", options(nostack)) };
    }
    let result = f();
    if smap {
        // SAFETY: CLAC only clears RFLAGS.AC, restoring SMAP's protection.
        unsafe { core::arch::asm!("clac", options(nostack)) };
    }
    result
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
