//! Badges on the capabilities init hands out: who is calling, and which start of it.
//!
//! A child's handle 1 and its fault handler are capabilities to init's one port. Each is
//! badged with the child's slot (1-based on the wire: a server's index in the manifest),
//! the generation of this start of it, and, for the fault handler only, a flag no child's
//! own capability carries: a fault message is trusted by its badge alone, since anyone may
//! send the fault label. A message queued by an earlier start, before it died, carries an
//! old generation and is refused.

use core::sync::atomic::{AtomicU32, Ordering};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Badge {
    /// 0-based slot in the supervisor's table.
    pub slot: usize,
    pub generation: u32,
    /// The kernel's fault messages come with this set.
    pub fault: bool,
}

const FAULT: u64 = 1 << 63;
const SLOT_BITS: u64 = 0xffff;

/// Most slots a badge can name.
pub const MAX_SLOTS: usize = SLOT_BITS as usize - 1;

impl Badge {
    /// A badge for a new start of `slot`: a generation no earlier start had.
    pub fn fresh(slot: usize) -> Badge {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        Badge {
            slot,
            generation: NEXT.fetch_add(1, Ordering::Relaxed),
            fault: false,
        }
    }

    /// The same start's fault-handler badge.
    pub fn for_faults(self) -> Badge {
        Badge {
            fault: true,
            ..self
        }
    }

    pub fn encode(self) -> u64 {
        let fault = if self.fault { FAULT } else { 0 };
        (self.slot as u64 + 1) & SLOT_BITS | u64::from(self.generation) << 16 | fault
    }

    /// `None` for badge 0 (no badge: not one of ours).
    pub fn decode(raw: u64) -> Option<Badge> {
        let index = raw & SLOT_BITS;
        (index != 0).then(|| Badge {
            slot: index as usize - 1,
            generation: (raw >> 16) as u32,
            fault: raw & FAULT != 0,
        })
    }
}
