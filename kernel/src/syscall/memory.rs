//! Anonymous memory in the caller's own address space: map, unmap, protect.

use super::Args;
use crate::kernel::kernel;
use crate::mm::space::{AddressSpace, check_prot};
use crate::mm::{PAGE_SIZE, align_up};
use keel_abi::{Error, SyscallResult, layout};

fn with_space<R>(f: impl FnOnce(&mut AddressSpace) -> Result<R, Error>) -> Result<R, Error> {
    let mut k = kernel();
    let space = k
        .current_process()
        .space
        .as_mut()
        .expect("running process has memory");
    f(space)
}

pub fn map(args: Args) -> SyscallResult {
    let (addr, len, prot) = (args.get(0), args.get(1), args.get(2));
    check_prot(prot)?;
    with_space(|space| {
        let start = if addr == 0 {
            let rounded = align_up(len, PAGE_SIZE).ok_or(Error::InvalidArgument)?;
            if rounded != len || len == 0 || len > layout::USER_END - layout::USER_START {
                return Err(Error::InvalidArgument);
            }
            space.find_free(len)?
        } else {
            addr
        };
        space.map_anonymous(start, len, prot)?;
        Ok(start)
    })
}

pub fn unmap(args: Args) -> SyscallResult {
    with_space(|space| space.unmap(args.get(0), args.get(1))).map(|()| 0)
}

pub fn protect(args: Args) -> SyscallResult {
    with_space(|space| space.protect(args.get(0), args.get(1), args.get(2))).map(|()| 0)
}
