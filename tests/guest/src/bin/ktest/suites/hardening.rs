//! Hardening: what a hostile process found (issue 16), each fixed, each shown here to stay
//! fixed: nothing a process does leaks kernel memory or frames past its end, and one
//! process cannot take what others need.

use alloc::format;
use alloc::string::String;

use keel_abi::SysInfo;
use keel_guest_tests::Role;
use keel_rt::sys;

use crate::check::{Context, ensure};
use crate::child;
use crate::runner::{Suite, suite};

pub const SUITE: Suite = suite!(hardening:
    a_port_whose_last_capability_is_queued_on_itself_is_freed_with_what_it_holds,
    page_tables_count_against_the_kernel_bytes_quota,
);

fn free_frames() -> Result<usize, String> {
    sys::sys_info(SysInfo::FreeFrames).context("sys_info(FreeFrames)")
}

/// Finding 1: 16 frames were lost per round; a chain of such ports must not overflow the
/// kernel stack either (it is freed in a loop).
fn a_port_whose_last_capability_is_queued_on_itself_is_freed_with_what_it_holds()
-> Result<(), String> {
    // A first child warms ktest up (its heap grows once to spawn and wait).
    child::expect_exit(Role::SelfQueuedPort, "1 1", 0)?;
    let before = free_frames()?;
    child::expect_exit(Role::SelfQueuedPort, "50 0", 0)?;
    let after_rounds = free_frames()?;
    child::expect_exit(Role::SelfQueuedPort, "0 200", 0)?;
    let after_chain = free_frames()?;
    ensure(after_rounds == before && after_chain == before, || {
        format!(
            "free frames: {before} before, {after_rounds} after 50 self-queued ports, \
             {after_chain} after a chain of 200"
        )
    })
}

/// Finding 3: sparse one-page maps took a process's kernel bytes to 2,596,928, over its
/// 2 MiB quota. The child checks the refusal and its figures; here, that its frames return.
fn page_tables_count_against_the_kernel_bytes_quota() -> Result<(), String> {
    let before = free_frames()?;
    child::expect_exit(Role::SparseMaps, "", 0)?;
    let after = free_frames()?;
    ensure(after == before, || {
        format!("free frames: {before} before the sparse maps, {after} after")
    })
}
