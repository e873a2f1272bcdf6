//! `cargo boot gdb [PROGRAM]`: the demo system under QEMU's gdb stub, halted before its
//! first instruction, and a gdb script (`target/gdb/keel.gdb`) that connects to it and loads
//! the kernel's symbols and PROGRAM's.
//!
//! Every user program is linked at the same addresses, so a breakpoint in PROGRAM's code
//! also stops whichever other process runs that address. The script adds two commands for
//! that: `keel-process` prints the running process's name (from its start-up record, which
//! every process has at the same address), and `keel-continue-in NAME` continues until a
//! breakpoint stops in the process called NAME (its manifest entry's name). QEMU's TCG keeps
//! gdb's breakpoints itself, without writing into guest memory, so a breakpoint never
//! corrupts another process's code.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use keel_abi::layout::{START_INFO_ADDR, StartInfo};

use crate::image::{self, utf8};
use crate::qemu::{Accel, Boot, Console, Qemu};
use crate::{Error, Result, guest, manifest, setup, workspace_root};

/// The port QEMU's gdb stub listens on, on the loopback only.
pub const PORT: u16 = 1234;

/// Where the running process's name is: its start-up record's `name`.
pub fn process_name_addr() -> usize {
    START_INFO_ADDR + core::mem::offset_of!(StartInfo, name)
}

/// The gdb script: connect to `port`, load the kernel's symbols and `program`'s, and define
/// `keel-process` and `keel-continue-in`.
pub fn script(port: u16, kernel: &Path, program: Option<&Path>) -> Result<String> {
    let name = process_name_addr();
    let mut text = String::new();
    // Synchronous execution, so that `continue` in a user command waits for the stop; the
    // commands speak C for their casts (Rust's syntax has none for a raw address).
    let _ = writeln!(text, "maint set target-async off");
    let _ = writeln!(text, "set confirm off");
    let _ = writeln!(text, "target remote 127.0.0.1:{port}");
    let _ = writeln!(text, "symbol-file {}", utf8(kernel)?);
    if let Some(program) = program {
        let _ = writeln!(text, "add-symbol-file {}", utf8(program)?);
    }
    let _ = write!(
        text,
        "define keel-process
  set language c
  printf \"%s\\n\", (char *) {name:#x}
  set language auto
end
document keel-process
The name of the process running now (every program shares its addresses with the others).
end
define keel-continue-in
  set language c
  continue
  while $_streq((char *) {name:#x}, \"$arg0\") == 0
    continue
  end
  set language auto
end
document keel-continue-in
Continue until a breakpoint stops in the process called NAME (its entry's name in system.toml).
end
"
    );
    Ok(text)
}

/// Write the script for `program` (a package's binary) to target/gdb/keel.gdb.
pub fn write_script(port: u16, program: Option<&str>) -> Result<PathBuf> {
    let program = program.map(guest::binary);
    if let Some(path) = program.as_deref().filter(|path| !path.is_file()) {
        return Err(Error::new(format!(
            "no program {} (a program is a binary the demo runs: see system.toml)",
            path.display()
        )));
    }
    let text = script(port, &guest::binary("kernel"), program.as_deref())?;
    let dir = workspace_root().join("target").join("gdb");
    std::fs::create_dir_all(&dir).map_err(|e| Error::new(format!("{}: {e}", dir.display())))?;
    let path = dir.join("keel.gdb");
    std::fs::write(&path, text).map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    Ok(path)
}

/// The demo image on `disk` under QEMU (TCG) with its gdb stub on `port`, halted at the
/// start.
pub fn qemu(port: u16, console: Console, disk: std::path::PathBuf) -> Result<Qemu> {
    let image = image::demo_image(&manifest::demo_path(), false)?;
    let mut qemu = Qemu::new(Boot::Direct(image), Accel::Tcg, console);
    qemu.gdb = Some(port);
    qemu.disk = Some(disk);
    Ok(qemu)
}

pub fn run(program: Option<&str>) -> Result<ExitCode> {
    setup::ensure(&setup::QEMU)?;
    let qemu = qemu(PORT, Console::Interactive, crate::disk::demo_disk(false)?)?;
    let script = write_script(PORT, program)?;
    println!(
        "bootimage: QEMU waits for gdb on 127.0.0.1:{PORT}; in another terminal, from {}:",
        workspace_root().display()
    );
    println!("  gdb -x {}", utf8(&script)?);
    println!(
        "bootimage: then `break FILE:LINE`, and `keel-continue-in NAME` to stop in the process \
         called NAME (docs/DEBUGGING.md); serial console on this terminal, quit with Ctrl-A X"
    );
    let run = qemu.run(&mut |_| {})?;
    // A gdb `kill` and Ctrl-A X both end QEMU without a status of the guest's.
    println!(
        "bootimage: QEMU ended after {:.1} s",
        run.elapsed.as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_connects_loads_symbols_and_finds_the_process_name() {
        let text = script(4321, Path::new("/k/kernel"), Some(Path::new("/k/kv"))).unwrap();
        assert!(text.contains("target remote 127.0.0.1:4321\n"));
        assert!(text.contains("symbol-file /k/kernel\n"));
        assert!(text.contains("add-symbol-file /k/kv\n"));
        assert!(text.contains(&format!("(char *) {:#x}", process_name_addr())));
        // The name follows the modules in the two-page record.
        assert!(process_name_addr() > START_INFO_ADDR + 4096);
    }
}
