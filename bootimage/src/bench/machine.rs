//! Facts about the host that a benchmark file records: its CPU and its QEMU.

use std::fs;
use std::process::Command;

/// The host CPU's model name, from /proc/cpuinfo.
pub fn cpu_model() -> String {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    model_name(&cpuinfo).unwrap_or("unknown").to_owned()
}

fn model_name(cpuinfo: &str) -> Option<&str> {
    cpuinfo
        .lines()
        .filter_map(|line| line.split_once(':'))
        .find(|(key, _)| key.trim() == "model name")
        .map(|(_, value)| value.trim())
}

/// The first line of `qemu-system-x86_64 --version`.
pub fn qemu_version() -> String {
    Command::new(crate::qemu::PROGRAM)
        .arg("--version")
        .output()
        .ok()
        .and_then(|output| {
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.lines().next().map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_model_name_is_taken() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n\
                       processor\t: 1\nmodel name\t: AMD EPYC\n";
        assert_eq!(model_name(cpuinfo), Some("AMD EPYC"));
        assert_eq!(model_name("flags: fpu"), None);
    }
}
