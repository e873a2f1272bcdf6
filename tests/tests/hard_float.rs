//! Hardware floating point in user programs: `examples/float`, a hard-float program
//! (`[package.metadata.keel] float = "hard"`), must compile its f64 arithmetic and SSE2
//! intrinsics to SSE instructions. (That its results are exact is checked where it runs:
//! the demo's `float` entry must exit 0.)

use bootimage::{guest, setup};
use elf::ElfBytes;
use elf::endian::AnyEndian;

/// Whether `code` holds the instruction bytes `needle` anywhere.
fn holds(code: &[u8], needle: &[u8]) -> bool {
    code.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn a_hard_float_program_computes_with_sse_instructions() {
    setup::ensure_guest_target().expect("the guest target");
    guest::build(&["float"]).expect("building examples/float");
    let bytes = std::fs::read(guest::binary("float")).expect("the float binary");
    let file = ElfBytes::<AnyEndian>::minimal_parse(&bytes).expect("an ELF file");
    let text = file
        .section_header_by_name(".text")
        .expect("section headers")
        .expect("a .text section");
    let (code, _) = file.section_data(&text).expect(".text's bytes");
    // Scalar double add, multiply and square root (F2 0F 58, 59, 51 /r) and scalar single
    // add (F3 0F 58 /r): what its f64 and f32 arithmetic and its SSE2 intrinsics compile to
    // (LLVM keeps only the lane the program reads), where a soft-float build would call
    // library routines.
    for (what, opcode) in [
        ("addsd", &[0xf2, 0x0f, 0x58][..]),
        ("mulsd", &[0xf2, 0x0f, 0x59][..]),
        ("sqrtsd", &[0xf2, 0x0f, 0x51][..]),
        ("addss", &[0xf3, 0x0f, 0x58][..]),
    ] {
        assert!(holds(code, opcode), "no {what} in examples/float's code");
    }
}
