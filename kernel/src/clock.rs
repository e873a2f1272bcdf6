//! The clock page: one frame the timer writes the tick count into, mapped read-only at
//! [`CLOCK_ADDR`](keel_abi::layout::CLOCK_ADDR) in every process, so reading the time takes
//! no syscall.

use crate::mm::{PhysAddr, frame, phys_to_virt};
use conquer_once::spin::OnceCell;
use core::mem::offset_of;
use core::sync::atomic::{AtomicU64, Ordering};
use keel_abi::layout::ClockPage;

static FRAME: OnceCell<PhysAddr> = OnceCell::uninit();

/// The page's word at `offset`, through the direct map.
fn word(offset: usize) -> &'static AtomicU64 {
    let frame = frame();
    // SAFETY: the frame is the kernel's for good, 8-byte aligned words of it are only ever
    // accessed atomically by the kernel (user space reads them through a read-only mapping).
    unsafe { AtomicU64::from_ptr((phys_to_virt(frame) + offset) as *mut u64) }
}

/// Take the frame and write the tick rate.
pub fn init(tick_hz: u64) {
    let frame = frame::alloc_zeroed().expect("a frame for the clock page");
    FRAME.init_once(|| frame);
    word(offset_of!(ClockPage, tick_hz)).store(tick_hz, Ordering::Release);
}

/// The frame to map into a new process.
pub fn frame() -> PhysAddr {
    *FRAME.get().expect("the clock page is set up at boot")
}

/// The boot core's timer ticked: one more tick since boot. The clock page's count is the
/// kernel's time.
pub fn advance() {
    word(offset_of!(ClockPage, ticks)).fetch_add(1, Ordering::AcqRel);
}

/// The ticks since boot.
pub fn ticks() -> u64 {
    word(offset_of!(ClockPage, ticks)).load(Ordering::Acquire)
}
