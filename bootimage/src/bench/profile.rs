//! `cargo boot bench --profile --filter NAME`: where a benchmark's instructions go, per
//! function.
//!
//! QEMU logs each translation block it translates (`in_asm`: the guest instructions) and
//! each one it executes (`exec`, with `nochain` so that every execution is logged) to its
//! stderr, which is read as it comes (a run logs gigabytes). Each executed block's
//! instructions are attributed to the function symbols of the kernel and of kbench (the only
//! program in the bench image, so every user address is its), and the counts are divided by
//! the operations the matched benchmark ran (warm-up included). It is a profile, not the
//! benchmark: boot and set-up code appear too (as their own functions), and a block an
//! interrupt cut short counts whole.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;

use crate::image::Image;
use crate::qemu::{Accel, Boot, Console, Qemu};
use crate::symbols::Symbols;
use crate::{Error, Result, guest};

/// Functions shown, most instructions first.
const SHOWN: usize = 40;

/// Executions of each translation block, and the instruction addresses of each.
#[derive(Default)]
struct Trace {
    blocks: HashMap<u64, Vec<u64>>,
    executed: HashMap<u64, u64>,
}

impl Trace {
    fn read(log: impl BufRead) -> Trace {
        let mut trace = Trace::default();
        let mut block: Option<Vec<u64>> = None;
        for line in log.lines().map_while(|line| line.ok()) {
            if line.starts_with("IN:") {
                block = Some(Vec::new());
            } else if let Some(instructions) = block.as_mut() {
                match line
                    .strip_prefix("0x")
                    .and_then(|rest| rest.split_once(':'))
                {
                    Some((address, _)) => instructions.extend(u64::from_str_radix(address, 16)),
                    None if line.trim().is_empty() => {
                        if let Some(&start) = instructions.first() {
                            trace.blocks.insert(start, block.take().unwrap_or_default());
                        }
                        block = None;
                    }
                    None => {}
                }
            } else if let Some(pc) = executed_block(&line) {
                *trace.executed.entry(pc).or_default() += 1;
            }
        }
        trace
    }

    /// Instructions executed per function.
    fn by_function<'a>(&self, symbols: &'a Symbols) -> Vec<(&'a str, u64)> {
        let mut counts: HashMap<&str, u64> = HashMap::new();
        for (pc, times) in &self.executed {
            for &address in self.blocks.get(pc).into_iter().flatten() {
                *counts.entry(symbols.name(address)).or_default() += times;
            }
        }
        let mut counts: Vec<_> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        counts
    }
}

/// The guest address of the block a `Trace` line says was executed:
/// `Trace 0: 0xHOST [CS_BASE/PC/FLAGS/CFLAGS] ...`.
fn executed_block(line: &str) -> Option<u64> {
    let rest = line.strip_prefix("Trace ")?;
    let fields = rest.split_once('[')?.1;
    let pc = fields.split('/').nth(1)?;
    u64::from_str_radix(pc, 16).ok()
}

/// Operations the benchmark ran, from kbench's `kbench: NAME: W warm-up, N measured` line.
fn operations(line: &str) -> Option<(String, u64)> {
    let rest = line.strip_prefix("kbench: ")?;
    let (name, counts) = rest.split_once(": ")?;
    let (warmup, rest) = counts.split_once(" warm-up, ")?;
    let measured = rest.split_once(' ')?.0;
    Some((
        name.to_owned(),
        warmup.parse::<u64>().ok()? + measured.parse::<u64>().ok()?,
    ))
}

pub fn run(filter: &str) -> Result<()> {
    guest::build(guest::BENCH_PACKAGES)?;
    let mut qemu = Qemu::new(
        Boot::Direct(Image::bench(filter)),
        Accel::Tcg,
        Console::Scripted {
            timeout: super::TIMEOUT,
        },
    );
    qemu.icount = true;
    qemu.disk = Some(super::disk()?);
    let mut child = Command::new("qemu-system-x86_64")
        .args(qemu.args()?)
        .args(["-d", "in_asm,exec,nochain", "-D", "/dev/stderr"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::new(format!("starting QEMU: {e}")))?;
    let serial = child.stdout.take().expect("piped");
    let reader = thread::spawn(move || {
        let mut benchmarks = Vec::new();
        for line in BufReader::new(serial).lines().map_while(|line| line.ok()) {
            if let Some(found) = operations(&line) {
                println!("{line}");
                benchmarks.push(found);
            }
        }
        benchmarks
    });
    let trace = Trace::read(BufReader::new(child.stderr.take().expect("piped")));
    child
        .wait()
        .map_err(|e| Error::new(format!("waiting for QEMU: {e}")))?;
    let benchmarks = reader.join().unwrap_or_default();
    let symbols = Symbols::read(&[guest::binary("kernel"), guest::binary("kbench")])?;
    let counts = trace.by_function(&symbols);
    let total: u64 = counts.iter().map(|(_, n)| n).sum();
    let (per, unit) = match benchmarks.as_slice() {
        [(name, ops)] => (*ops as f64, format!("per operation of {name} ({ops} run)")),
        [] => return Err(Error::new(format!("no benchmark name contains `{filter}`"))),
        _ => (
            1.0,
            "in all (several benchmarks matched: --filter one)".to_owned(),
        ),
    };
    println!("bootimage: {total} guest instructions in the run; by function, {unit}:");
    for (name, count) in counts.iter().take(SHOWN) {
        println!("{:>12.1}  {name}", *count as f64 / per);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_their_executions_are_read_from_the_log() {
        let log = "----------------\nIN: \n0x00001000:  90  nop\n0x00001001:  c3  ret\n\n\
                   Trace 0: 0x7f00 [0/0000000000001000/00000040/ff020200] \n\
                   Trace 0: 0x7f00 [0/0000000000001000/00000040/ff020200] \n";
        let trace = Trace::read(log.as_bytes());
        assert_eq!(trace.blocks[&0x1000], [0x1000, 0x1001]);
        assert_eq!(trace.executed[&0x1000], 2);
        let symbols = Symbols(vec![(0x1000, "f".into()), (0x1001, "g".into())]);
        assert_eq!(trace.by_function(&symbols), [("f", 2), ("g", 2)]);
    }

    #[test]
    fn kbench_progress_lines_give_the_operations() {
        assert_eq!(
            operations("kbench: port_call_cross_as: 1000 warm-up, 10000 measured ..."),
            Some(("port_call_cross_as".into(), 11000))
        );
        assert_eq!(operations("kbench: all benchmarks ran"), None);
    }
}
