//! Messages: four words in registers, an optional payload and capabilities in the IPC buffer.

/// Register words carried by every message.
pub const MESSAGE_WORDS: usize = 4;
/// Capabilities one message can carry.
pub const MESSAGE_CAPS: usize = 4;
/// Payload bytes one message can carry through the IPC buffer.
pub const MAX_PAYLOAD: usize = 4032;
/// Most messages a port can queue.
pub const MAX_PORT_CAPACITY: usize = 64;

/// The label of a fault message: words are vector, error code, rip, address (CR2), and it
/// carries one capability, to the faulting thread (READ, MANAGE), through which the handler
/// can read and change its registers (`thread_regs_read`, `thread_regs_write`). The
/// handler answers with word 0 = [`FAULT_RESUME`] (retry the instruction; word 1, when not
/// zero, is the rip to resume at) or anything else to end the process.
pub const LABEL_FAULT: u32 = 0xffff_fff0;
pub const FAULT_RESUME: u64 = 0;

/// What a message holds besides its words: `label` (user-defined), payload length, number
/// of capabilities, and flags set by the kernel on receipt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MessageInfo(pub u64);

impl MessageInfo {
    /// Set on receipt when the message is a notification: word 0 holds the bits.
    pub const NOTIFICATION: u64 = 1 << 20;
    /// Set on receipt when the receiver had no free slot for the capabilities sent.
    pub const CAPS_DROPPED: u64 = 1 << 21;
    /// Set on receipt when the receiving thread has no IPC buffer for the payload sent.
    pub const PAYLOAD_DROPPED: u64 = 1 << 22;
    /// Set by a caller (`port_call`): send only if a receiver waits on the port now, else
    /// fail with `WouldBlock` having sent nothing. For a call that must not wait on a busy
    /// server, nor on one that itself waits in a call: two such calls never wait on each
    /// other.
    pub const TO_RECEIVER: u64 = 1 << 23;

    pub const fn new(label: u32, payload_len: usize, caps: usize) -> Self {
        MessageInfo(
            ((label as u64) << 32) | ((caps as u64 & 0xf) << 16) | (payload_len as u64 & 0xffff),
        )
    }

    pub const fn label(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub const fn payload_len(self) -> usize {
        (self.0 & 0xffff) as usize
    }

    pub const fn caps(self) -> usize {
        ((self.0 >> 16) & 0xf) as usize
    }

    pub const fn is_notification(self) -> bool {
        self.0 & Self::NOTIFICATION != 0
    }

    pub const fn caps_dropped(self) -> bool {
        self.0 & Self::CAPS_DROPPED != 0
    }

    pub const fn to_receiver(self) -> bool {
        self.0 & Self::TO_RECEIVER != 0
    }

    pub const fn payload_dropped(self) -> bool {
        self.0 & Self::PAYLOAD_DROPPED != 0
    }
}

/// A thread's IPC buffer: one page it registers with `ipc_buffer_set`. Capability handles to
/// send go in `caps` before the send; received ones appear there. The payload likewise.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IpcBuffer {
    pub caps: [u32; MESSAGE_CAPS],
    pub _reserved: [u64; 6],
    pub payload: [u8; MAX_PAYLOAD],
}

/// Counters of one port, or of the whole system.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpcStats {
    pub sent: u64,
    pub received: u64,
    pub calls: u64,
    pub replies: u64,
    pub notifications: u64,
    /// Calls and replies handed straight to a waiting thread, registers only.
    pub fast_path_hits: u64,
    /// Calls and replies that had to queue or take the general path.
    pub fast_path_misses: u64,
    /// Handle lookups answered by the thread's path cache.
    pub path_cache_hits: u64,
    pub path_cache_misses: u64,
    /// Sends refused because the queue was full.
    pub queue_full: u64,
}
