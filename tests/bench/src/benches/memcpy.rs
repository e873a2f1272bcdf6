//! `memcpy_1mib`: a plain 1 MiB `copy_from_slice` between two buffers of kbench's own, the
//! baseline the `service_vec_1mib` target is relative to.
//!
//! `copy_from_slice` compiles to a call of `memcpy`, which on x86_64-unknown-none is
//! compiler_builtins' `rep movsq` for the aligned middle (`rep movsb` for the ends); under
//! icount each repetition counts as an instruction, so 1 MiB is about 131,072 of them.

use alloc::vec;

use crate::benches::bulk::{LEN, pattern};
use crate::clock;
use crate::failure::{Failure, ensure};
use crate::harness::Measure;
use crate::ipc_page::IpcPage;
use crate::stats::Stats;

/// The window is one call of [`copy`]. Each sample stamps the source's first word and last
/// byte beforehand and checks them in the copy after; the whole copy is compared once,
/// after the samples.
pub fn memcpy_1mib(measure: &mut Measure, _: &mut IpcPage) -> Result<Stats, Failure> {
    let mut source = pattern();
    let mut target = vec![0; LEN];
    let mut sample: u64 = 0;
    let stats = measure.run(|| {
        sample += 1;
        source[..8].copy_from_slice(&sample.to_le_bytes());
        source[LEN - 1] = sample as u8;
        let start = clock::now();
        copy(&mut target, &source);
        let elapsed = clock::now() - start;
        ensure(
            target[..8] == source[..8] && target[LEN - 1] == source[LEN - 1],
            || alloc::format!("sample {sample}: the copy's ends differ from the source's"),
        )?;
        Ok(elapsed)
    })?;
    ensure(target == source, || {
        "the copy differs from the source".into()
    })?;
    Ok(stats)
}

/// The copy. Not inlined, so the timed window holds exactly this call.
#[inline(never)]
fn copy(target: &mut [u8], source: &[u8]) {
    target.copy_from_slice(source);
}
