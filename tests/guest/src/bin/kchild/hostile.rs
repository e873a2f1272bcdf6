//! Roles that do what a hostile process would, to show the kernel survives it and leaks
//! nothing (issue 16).

use keel_rt::ipc::{Message, Port};
use keel_rt::mem::Memory;

use crate::{Failure, OrSetup};

/// What each self-addressed message holds: 16 frames.
const OBJECT_LEN: usize = 0x10000;

pub fn self_queued_port(arg: &str) -> Result<i32, Failure> {
    let mut numbers = arg.split(' ').map(str::parse::<usize>);
    let (Some(Ok(rounds)), Some(Ok(chain)), Some(Ok(cycles))) =
        (numbers.next(), numbers.next(), numbers.next())
    else {
        return Err(Failure::check(
            "`self-queued-port` wants ROUNDS CHAIN CYCLES",
        ));
    };
    for _ in 0..cycles {
        let (a, b) = (
            Port::create(1).or_setup("port_create")?,
            Port::create(1).or_setup("port_create")?,
        );
        let memory = Memory::create(OBJECT_LEN).or_setup("mem_create")?;
        a.send(&Message::new(0, [0; 4]).with_caps(&[b.handle(), memory.handle()]))
            .or_setup("port_send")?;
        send_and_forget(b, &[a.handle()])?;
        keel_rt::sys::ipc::cap_delete(a.handle()).or_setup("cap_delete(a)")?;
        keel_rt::sys::ipc::cap_delete(memory.handle()).or_setup("cap_delete(memory)")?;
    }
    for _ in 0..rounds {
        let port = Port::create(1).or_setup("port_create")?;
        let memory = Memory::create(OBJECT_LEN).or_setup("mem_create")?;
        send_and_forget(port, &[port.handle(), memory.handle()])?;
        keel_rt::sys::ipc::cap_delete(memory.handle()).or_setup("cap_delete(memory)")?;
    }
    if chain > 0 {
        let memory = Memory::create(OBJECT_LEN).or_setup("mem_create")?;
        let mut previous = memory.handle();
        for _ in 0..chain {
            let port = Port::create(1).or_setup("port_create")?;
            let message = Message::new(0, [0; 4]).with_caps(&[port.handle(), previous]);
            port.send(&message).or_setup("port_send")?;
            keel_rt::sys::ipc::cap_delete(previous).or_setup("cap_delete")?;
            previous = port.handle();
        }
        keel_rt::sys::ipc::cap_delete(previous).or_setup("cap_delete(last port)")?;
    }
    Ok(0)
}

/// Send `caps` on `port` in one message, then delete the handle to `port`.
fn send_and_forget(port: Port, caps: &[keel_abi::cap::Handle]) -> Result<(), Failure> {
    port.send(&Message::new(0, [0; 4]).with_caps(caps))
        .or_setup("port_send")?;
    keel_rt::sys::ipc::cap_delete(port.handle()).or_setup("cap_delete(port)")
}

/// One page per top-level page-table entry: each takes three new page tables.
const SPARSE_STRIDE: usize = 512 << 30;

pub fn sparse_maps() -> Result<i32, Failure> {
    use keel_abi::layout::{MMAP_BASE, PAGE_SIZE, USER_END};
    use keel_rt::sys::{self, ipc::resources};
    // Room for the verdict, taken before the heap may be unable to grow.
    let mut why = alloc::string::String::with_capacity(256);
    let mut mapped = alloc::vec::Vec::with_capacity(200);
    let mut refusal = None;
    let mut addr = MMAP_BASE;
    // 200 maps need 600 page tables, 2.4 MiB; and leave regions for the heap to grow.
    while addr + PAGE_SIZE <= USER_END && mapped.len() < 200 {
        match sys::mem_map(
            addr,
            PAGE_SIZE,
            keel_abi::prot::READ | keel_abi::prot::WRITE,
        ) {
            Ok(_) => mapped.push(addr),
            // The runtime's own memory (its heap, the first maps) is there already.
            Err(keel_abi::Error::Exists) => {}
            Err(error) => {
                refusal = Some(error);
                break;
            }
        }
        addr += SPARSE_STRIDE;
    }
    let held = resources().or_setup("resources")?;
    if held.kernel_bytes_used > held.kernel_bytes_limit {
        let _ = core::fmt::Write::write_fmt(
            &mut why,
            format_args!(
                "{} sparse pages hold {} kernel bytes, over the limit of {}",
                mapped.len(),
                held.kernel_bytes_used,
                held.kernel_bytes_limit
            ),
        );
        return Err(Failure::Check(why));
    }
    crate::expect_eq(
        "how the sparse maps ended",
        refusal,
        Some(keel_abi::Error::QuotaExceeded),
    )?;
    for &page in &mapped {
        // SAFETY: these pages were mapped above and nothing refers to them.
        unsafe { sys::mem_unmap(page, PAGE_SIZE) }.or_setup("mem_unmap")?;
    }
    let again = sys::mem_map(addr, PAGE_SIZE, keel_abi::prot::READ).map(drop);
    crate::expect_eq("a map after unmapping them all", again, Ok(()))?;
    Ok(0)
}

/// Frames each of [`breeder`]'s children gets: 2 MiB.
pub const BREEDER_CHILD_FRAMES: usize = 512;

/// Two numbers separated by a space.
fn two_numbers(arg: &str, role: &str) -> Result<(usize, usize), Failure> {
    let mut numbers = arg.split(' ').map(str::parse::<usize>);
    match (numbers.next(), numbers.next()) {
        (Some(Ok(a)), Some(Ok(b))) => Ok((a, b)),
        _ => Err(Failure::check(alloc::format!("`{role}` wants two numbers"))),
    }
}

/// `kchild`'s own image, `len` bytes at the start of the memory object at handle 1.
fn own_image(len: usize) -> Result<&'static [u8], Failure> {
    let mapping = Memory::from_handle(1)
        .map(keel_abi::prot::READ)
        .or_setup("mapping the image")?;
    if len > mapping.len() {
        return Err(Failure::check("the image is longer than its memory object"));
    }
    // SAFETY: the mapping lasts as long as handle 1, which this process never deletes, and
    // nobody writes the object once this process runs.
    Ok(unsafe { core::slice::from_raw_parts(mapping.as_ptr(), len) })
}

fn sleep_for_ever() -> ! {
    loop {
        keel_rt::time::sleep(core::time::Duration::from_secs(3600));
    }
}

pub fn breeder(arg: &str) -> Result<i32, Failure> {
    use keel_rt::process::Spawn;
    let (len, limit) = two_numbers(arg, "breeder")?;
    let image = own_image(len)?;
    let idle = |processes: u32| {
        Spawn::new("kchild", image)
            .args("idle")
            .frames(BREEDER_CHILD_FRAMES)
            .max_processes(processes)
            .spawn()
            .map(drop)
    };
    let above = idle(limit as u32 + 1);
    let mut children = 0;
    let refusal = loop {
        match idle(0) {
            Ok(()) => children += 1,
            Err(error) => break Err(error),
        }
        if children > keel_abi::layout::PAGE_SIZE {
            break Ok(());
        }
    };
    let word = keel_guest_tests::encode_results(&[above, refusal]) as u64;
    Port::from_handle(2)
        .send(&Message::new(0, [word, children as u64, 0, 0]))
        .or_setup("port_send")?;
    sleep_for_ever()
}

pub fn hog(arg: &str) -> Result<i32, Failure> {
    use keel_rt::process::Spawn;
    let (len, depth) = two_numbers(arg, "hog")?;
    let image = own_image(len)?;
    // Made before memory runs out.
    let args = alloc::format!("hog {len} {}", depth.saturating_sub(1));
    let message = Message::new(0, [0; 4]);
    let mut mebibytes = 0u64;
    let map_error = loop {
        match keel_rt::sys::mem_map(0, 1 << 20, keel_abi::prot::READ | keel_abi::prot::WRITE) {
            Ok(_) => mebibytes += 1,
            Err(error) => break error,
        }
    };
    let spawned = match depth {
        0 => Ok(()),
        _ => Spawn::new("kchild", image)
            .args(&args)
            .rights(keel_abi::rights::SPAWN)
            .caps(&[1, 2])
            .spawn()
            .map(drop),
    };
    let word = keel_guest_tests::encode_results(&[Err(map_error), spawned]) as u64;
    let message = Message {
        words: [word, mebibytes, 0, 0],
        ..message
    };
    Port::from_handle(2).send(&message).or_setup("port_send")?;
    sleep_for_ever()
}

pub fn limited(arg: &str) -> Result<i32, Failure> {
    let (frames, threads) = two_numbers(arg, "limited")?;
    let held = keel_rt::sys::ipc::resources().or_setup("resources")?;
    crate::expect_eq("the frame quota", held.frames_limit as usize, frames)?;
    let mut started = 1;
    let refusal = loop {
        let sleeper = keel_rt::thread::spawn(|| {
            loop {
                keel_rt::time::sleep(core::time::Duration::from_secs(3600));
            }
        });
        match sleeper {
            Ok(_) => started += 1,
            Err(error) => break error,
        }
        if started > keel_abi::MAX_THREADS as usize {
            return Err(Failure::check("more threads than any process may have"));
        }
    };
    crate::expect_eq("threads it could have", started, threads)?;
    crate::expect_eq("the next thread", refusal, keel_abi::Error::QuotaExceeded)?;
    Ok(0)
}
