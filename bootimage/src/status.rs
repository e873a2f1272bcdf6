//! How a QEMU run ended, and what that means for the guest.
//!
//! The guest powers off through QEMU's `isa-debug-exit` device: writing `value` makes QEMU
//! exit with status `(value << 1) | 1`. Only [`poweroff::SUCCESS_STATUS`] (33) is success;
//! everything else is explained, because a bare number helps nobody.

use std::fmt;
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use keel_abi::poweroff;

/// The end of one QEMU run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    /// QEMU exited with this status.
    Status(i32),
    /// A signal ended QEMU.
    Signal(i32),
    /// We killed QEMU after this long.
    TimedOut(Duration),
}

const GUEST_FAILURE_STATUS: i32 = status_of(poweroff::FAILURE);
const KERNEL_PANIC_STATUS: i32 = status_of(poweroff::KERNEL_PANIC);

/// QEMU's exit status for a value written to `isa-debug-exit`.
const fn status_of(value: u32) -> i32 {
    ((value << 1) | 1) as i32
}

impl Exit {
    pub fn from_status(status: ExitStatus) -> Exit {
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Status(code),
            (None, Some(signal)) => Exit::Signal(signal),
            // Neither code nor signal does not happen for a waited-for child on Unix.
            (None, None) => Exit::Signal(0),
        }
    }

    /// The guest powered off with [`poweroff::SUCCESS`], and nothing else happened.
    pub fn is_success(self) -> bool {
        self == Exit::Status(poweroff::SUCCESS_STATUS)
    }

    /// What the exit means, in words.
    pub fn meaning(self) -> String {
        match self {
            Exit::Status(status) if status == poweroff::SUCCESS_STATUS => {
                "success (the guest powered off with SUCCESS)".into()
            }
            Exit::Status(status) if status == GUEST_FAILURE_STATUS => {
                "the guest reported failure (poweroff FAILURE)".into()
            }
            Exit::Status(status) if status == KERNEL_PANIC_STATUS => "kernel panic".into(),
            Exit::Status(0) => "QEMU stopped without a debug-exit write: usually a triple fault \
                 (with -no-reboot a CPU reset ends QEMU), or a quit from the monitor"
                .into(),
            Exit::Status(1) => {
                "QEMU failed (see its stderr), or the guest wrote 0 to debug-exit".into()
            }
            Exit::Status(status) if status & 1 == 1 => format!(
                "the guest powered off with unknown value {:#x}",
                status >> 1
            ),
            Exit::Status(_) => "QEMU itself failed (see its stderr)".into(),
            Exit::Signal(signal) => format!("QEMU was killed by signal {signal}"),
            Exit::TimedOut(after) => format!(
                "the guest did not power off within {} s, so QEMU was killed",
                after.as_secs()
            ),
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Status(status) => write!(f, "status {status}: {}", self.meaning()),
            Exit::Signal(_) => f.write_str(&self.meaning()),
            Exit::TimedOut(after) => write!(f, "timeout after {} s (QEMU killed)", after.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_status_33_is_success() {
        assert!(Exit::Status(33).is_success());
        for other in [0, 1, 3, 32, 35, 63] {
            assert!(!Exit::Status(other).is_success(), "status {other}");
        }
        assert!(!Exit::Signal(9).is_success());
        assert!(!Exit::TimedOut(Duration::from_secs(90)).is_success());
    }

    #[test]
    fn the_agreed_statuses_have_their_meanings() {
        assert_eq!(GUEST_FAILURE_STATUS, 35);
        assert_eq!(KERNEL_PANIC_STATUS, 63);
        assert!(
            Exit::Status(35)
                .to_string()
                .contains("guest reported failure")
        );
        assert!(Exit::Status(63).to_string().contains("kernel panic"));
        assert!(Exit::Status(0).to_string().contains("triple fault"));
        assert!(Exit::Status(7).to_string().contains("unknown value 0x3"));
        assert!(Exit::Status(2).to_string().contains("QEMU itself failed"));
        assert_eq!(
            Exit::TimedOut(Duration::from_secs(90)).to_string(),
            "timeout after 90 s (QEMU killed)"
        );
    }

    #[test]
    fn exit_statuses_come_from_the_process() {
        assert_eq!(
            Exit::from_status(ExitStatus::from_raw(33 << 8)),
            Exit::Status(33)
        );
        assert_eq!(Exit::from_status(ExitStatus::from_raw(9)), Exit::Signal(9));
    }
}
