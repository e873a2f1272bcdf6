//! Just enough ELF64 to aim tests at `kchild`'s image: its entry point and program headers,
//! and the field offsets the bad-image tests corrupt.

use core::ops::Range;

/// Offsets of ELF header fields.
pub mod header {
    pub const CLASS: usize = 4;
    pub const DATA: usize = 5;
    pub const TYPE: usize = 16;
    pub const MACHINE: usize = 18;
    pub const ENTRY: usize = 24;
    pub const PHOFF: usize = 32;
    pub const PHENTSIZE: usize = 54;
    pub const PHNUM: usize = 56;
}

/// Offsets of program header fields.
pub mod program {
    pub const TYPE: usize = 0;
    pub const FLAGS: usize = 4;
    pub const OFFSET: usize = 8;
    pub const VADDR: usize = 16;
    pub const FILESZ: usize = 32;
    pub const MEMSZ: usize = 40;
}

pub const PT_LOAD: u32 = 1;
pub const PF_X: u32 = 1;

/// One program header, with where it sits in the image.
#[derive(Clone, Copy, Debug)]
pub struct Segment {
    /// Offset of the program header itself in the image.
    pub header_at: usize,
    pub kind: u32,
    pub flags: u32,
    pub offset: u64,
    pub vaddr: u64,
    pub filesz: u64,
    pub memsz: u64,
}

pub fn read_u16(image: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(image[at..at + 2].try_into().expect("two bytes"))
}

pub fn read_u32(image: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(image[at..at + 4].try_into().expect("four bytes"))
}

pub fn read_u64(image: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(image[at..at + 8].try_into().expect("eight bytes"))
}

pub fn write_u16(image: &mut [u8], at: usize, value: u16) {
    image[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub fn write_u64(image: &mut [u8], at: usize, value: u64) {
    image[at..at + 8].copy_from_slice(&value.to_le_bytes());
}

/// The entry point (`_start`).
pub fn entry(image: &[u8]) -> u64 {
    read_u64(image, header::ENTRY)
}

/// End of the program header table in the image.
pub fn program_headers_end(image: &[u8]) -> usize {
    let count = read_u16(image, header::PHNUM) as usize;
    let size = read_u16(image, header::PHENTSIZE) as usize;
    read_u64(image, header::PHOFF) as usize + count * size
}

/// The program headers of a well-formed image.
pub fn segments(image: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let table = read_u64(image, header::PHOFF) as usize;
    let size = read_u16(image, header::PHENTSIZE) as usize;
    (0..read_u16(image, header::PHNUM) as usize).map(move |i| {
        let at = table + i * size;
        Segment {
            header_at: at,
            kind: read_u32(image, at + program::TYPE),
            flags: read_u32(image, at + program::FLAGS),
            offset: read_u64(image, at + program::OFFSET),
            vaddr: read_u64(image, at + program::VADDR),
            filesz: read_u64(image, at + program::FILESZ),
            memsz: read_u64(image, at + program::MEMSZ),
        }
    })
}

/// The loadable segments.
pub fn loads(image: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    segments(image).filter(|segment| segment.kind == PT_LOAD)
}

/// The virtual address range of the executable segment.
pub fn code(image: &[u8]) -> Option<Range<u64>> {
    loads(image)
        .find(|segment| segment.flags & PF_X != 0)
        .map(|segment| segment.vaddr..segment.vaddr + segment.memsz)
}
