//! Guest addresses named after functions, from the ELF symbols of the kernel and the
//! programs: for profiles (`bench --profile`) and for the backtraces the kernel prints.
//!
//! The kernel prints a `stack scan of ...:` line of candidate return addresses after a user
//! fault (the faulting rip, then the words near the stack pointer that point into executable
//! memory) and after a panic (the words of the panicking stack's page that point into the
//! kernel's code). Guest programs
//! keep no frame pointers, so this is a scan, as Linux's `?` entries are: a stale return
//! address may show up too, but every real caller is there.

use std::path::{Path, PathBuf};

use elf::ElfBytes;
use elf::endian::AnyEndian;

use crate::{Error, Result, guest};

/// Section indices from here up are special (absolute values, common symbols): no code.
const SHN_LORESERVE: u16 = 0xff00;

/// Function names and where each starts, sorted by address.
pub struct Symbols(pub(crate) Vec<(u64, String)>);

impl Symbols {
    pub fn read(paths: &[PathBuf]) -> Result<Symbols> {
        let mut all = Vec::new();
        for path in paths {
            all.extend(read_one(path)?);
        }
        all.sort();
        Ok(Symbols(all))
    }

    /// The function holding `address`, or `?`.
    pub fn name(&self, address: u64) -> &str {
        self.locate(address).map_or("?", |(name, _)| name)
    }

    /// The function holding `address` and the offset into it.
    pub fn locate(&self, address: u64) -> Option<(&str, u64)> {
        match self.0.partition_point(|(start, _)| *start <= address) {
            0 => None,
            i => Some((&self.0[i - 1].1, address - self.0[i - 1].0)),
        }
    }
}

fn read_one(path: &Path) -> Result<Vec<(u64, String)>> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::new(format!("reading {}: {e}", path.display())))?;
    let file = ElfBytes::<AnyEndian>::minimal_parse(&bytes)
        .map_err(|e| Error::new(format!("{}: {e}", path.display())))?;
    let Ok(Some((table, names))) = file.symbol_table() else {
        return Err(Error::new(format!("{} has no symbols", path.display())));
    };
    // Functions, and the labels of assembly (syscall_entry and the like).
    let code = |s: &elf::symbol::Symbol| {
        s.st_shndx != elf::abi::SHN_UNDEF
            && s.st_shndx < SHN_LORESERVE
            && matches!(s.st_symtype(), elf::abi::STT_FUNC | elf::abi::STT_NOTYPE)
    };
    let mut found = Vec::new();
    for symbol in table.iter().filter(code) {
        match names.get(symbol.st_name as usize) {
            Ok(name) if !name.is_empty() && !name.starts_with(['.', '$']) => {
                let name = format!("{:#}", rustc_demangle::demangle(name));
                found.push((symbol.st_value, name));
            }
            _ => {}
        }
    }
    Ok(found)
}

/// The lines to print after a kernel line with a stack scan, naming each address's
/// function; `None` for any other line. The line says whose stack it is: `keel: stack scan
/// of NAME: RIP ADDRESS...` after a fault in the process called NAME (the symbols of the
/// program of that name are used, so a process named after its program is named in full),
/// `keel: stack scan of the kernel: ADDRESS...` after a panic.
pub fn annotate(line: &str) -> Option<Vec<String>> {
    let (whose, addresses) = line.strip_prefix("keel: stack scan of ")?.split_once(':')?;
    let elf = match whose {
        "the kernel" => guest::binary("kernel"),
        program => guest::binary(program),
    };
    let symbols = Symbols::read(std::slice::from_ref(&elf)).ok()?;
    let mut lines = vec![format!("bootimage: the stack scan of {whose}, named:")];
    // A fault's scan starts with the faulting rip, which is kept whatever it is.
    let rip = whose != "the kernel";
    for (i, address) in addresses
        .split_whitespace()
        .filter_map(parse_hex)
        .enumerate()
    {
        let named = match symbols.locate(address) {
            // A function's first byte is a function pointer left on the stack (formatting
            // arguments, say), never a return address.
            Some((_, 0)) if !(rip && i == 0) => continue,
            Some((name, offset)) => format!("{name}+{offset:#x}"),
            None => "?".into(),
        };
        lines.push(format!("bootimage:   {address:#x} {named}"));
    }
    Some(lines)
}

fn parse_hex(word: &str) -> Option<u64> {
    u64::from_str_radix(word.strip_prefix("0x")?, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_named_with_their_offsets() {
        let symbols = Symbols(vec![(0x1000, "f".into()), (0x1010, "g".into())]);
        assert_eq!(symbols.locate(0x1014), Some(("g", 4)));
        assert_eq!(symbols.locate(0x10), None);
        assert_eq!(symbols.name(0x1000), "f");
    }

    #[test]
    fn only_stack_scan_lines_of_known_programs_are_annotated() {
        assert_eq!(annotate("keel: process 2 exited"), None);
        assert_eq!(
            annotate("keel: stack scan of no-such-program: 0x1000"),
            None
        );
    }
}
