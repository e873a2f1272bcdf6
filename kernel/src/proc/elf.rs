//! Loading an ELF64 executable into a fresh address space.
//!
//! The image is untrusted (it may come from any process holding the spawn right): the `elf`
//! crate parses it without panicking, and every segment is checked for overflow, bounds,
//! user-half placement and W^X before anything is mapped. Overlapping segments are refused.

use crate::mm::space::AddressSpace;
use crate::mm::{PAGE_SIZE, align_up};
use elf::ElfBytes;
use elf::abi::{EM_X86_64, ET_EXEC, PF_R, PF_W, PF_X, PT_LOAD};
use elf::endian::LittleEndian;
use elf::file::Class;
use keel_abi::{Error, prot};

/// Map and fill every loadable segment; return the entry point.
pub fn load(space: &mut AddressSpace, image: &[u8]) -> Result<usize, Error> {
    let file = ElfBytes::<LittleEndian>::minimal_parse(image).map_err(|_| Error::BadElf)?;
    let header = &file.ehdr;
    if header.class != Class::ELF64 || header.e_machine != EM_X86_64 || header.e_type != ET_EXEC {
        return Err(Error::BadElf);
    }
    let entry = header.e_entry as usize;
    let mut entry_is_code = false;
    let segments = file.segments().ok_or(Error::BadElf)?;
    for segment in segments.iter().filter(|s| s.p_type == PT_LOAD) {
        let vaddr = segment.p_vaddr as usize;
        let memsz = segment.p_memsz as usize;
        let filesz = segment.p_filesz as usize;
        let offset = segment.p_offset as usize;
        if memsz == 0 {
            continue;
        }
        let file_end = offset.checked_add(filesz).ok_or(Error::BadElf)?;
        let mem_end = vaddr.checked_add(memsz).ok_or(Error::BadElf)?;
        if filesz > memsz || file_end > image.len() {
            return Err(Error::BadElf);
        }
        let flags = segment.p_flags;
        if flags & PF_W != 0 && flags & PF_X != 0 {
            return Err(Error::BadElf);
        }
        let mut bits = prot::READ;
        if flags & PF_W != 0 {
            bits |= prot::WRITE;
        }
        if flags & PF_X != 0 {
            bits |= prot::EXEC;
        }
        if flags & (PF_R | PF_W | PF_X) == 0 {
            return Err(Error::BadElf);
        }
        let start = vaddr & !(PAGE_SIZE - 1);
        let end = align_up(mem_end, PAGE_SIZE).ok_or(Error::BadElf)?;
        space
            .map_anonymous(start, end - start, bits)
            .map_err(|e| match e {
                Error::OutOfMemory | Error::QuotaExceeded => e,
                _ => Error::BadElf,
            })?;
        space.write_through_tables(vaddr, &image[offset..file_end])?;
        if flags & PF_X != 0 && (vaddr..mem_end).contains(&entry) {
            entry_is_code = true;
        }
    }
    if !entry_is_code {
        return Err(Error::BadElf);
    }
    Ok(entry)
}
