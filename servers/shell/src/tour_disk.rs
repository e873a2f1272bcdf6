//! The tour's steps on the disk: `df`, `ls`, `cat` of the README, a file that counts the
//! boots (so a second `cargo boot` shows the first one's), `mkdir`, `write`, `rm`, `sync`,
//! and a stream of writes during which the block driver is killed: init restarts it, the
//! file service sends the lost request again, and every write reads back.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use fs::{Files, FsError};
use keel_rt::abi::Error;
use keel_rt::names;

use crate::files;
use crate::term::Term;
use crate::tour::{Step, ensure, show};

/// The file that counts boots.
const BOOTS: &str = "/tour/boots.txt";
/// The stream: this many files of this many bytes, the driver killed after the first few.
const STREAM_FILES: usize = 12;
const STREAM_BYTES: usize = 48 * 1024;
const KILL_AFTER: usize = 3;

/// Whether this system has a file service the shell may use: the tour walks the disk
/// only then (the console suite's system has none). One that is granted but does not
/// answer fails the steps instead.
pub fn present() -> bool {
    match names::lookup(fs::NAME) {
        Ok(port) => {
            let _ = port.delete();
            true
        }
        Err(Error::PermissionDenied | Error::NotFound) => false,
        Err(_) => true,
    }
}

pub async fn df(term: &Term) -> Step {
    let usage = files::df().await?;
    show(term, "df", &files::format_usage(&usage)).await;
    ensure(usage.total > 0 && usage.free <= usage.total, || {
        format!("a disk of {usage:?} is not one")
    })
}

pub async fn readme(term: &Term) -> Step {
    let listing = files::ls("/").await?;
    show(term, "ls /", &listing).await;
    ensure(listing.contains("README.TXT"), || {
        "no README.TXT in /".into()
    })?;
    let text = files::cat("README.TXT").await?;
    show(term, "cat README.TXT", &text).await;
    ensure(text.contains("Keel's disk"), || {
        "README.TXT is not the disk's".into()
    })
}

/// Read the boot count the last boot wrote, write this boot's.
pub async fn boots(term: &Term) -> Step {
    match files::mkdir("tour").await {
        Ok(text) => show(term, "mkdir tour", &text).await,
        // A disk the tour ran on before has it.
        Err(why) if why.contains(&format!("{}", FsError::AlreadyExists)) => {}
        Err(why) => return Err(why),
    }
    let before = match files::cat(BOOTS).await {
        Ok(text) => {
            show(term, &format!("cat {BOOTS}"), &text).await;
            let count = text
                .trim()
                .strip_prefix("boots: ")
                .and_then(|n| n.parse().ok());
            count.ok_or_else(|| format!("{BOOTS} holds {text:?}"))?
        }
        Err(_) => 0u64,
    };
    let line = format!("boots: {}", before + 1);
    let text = files::write(BOOTS, &line).await?;
    show(term, &format!("write {BOOTS} {line}"), &text).await;
    let read = files::cat(BOOTS).await?;
    ensure(read.trim() == line, || {
        format!("{BOOTS} reads {read:?}, not {line:?}")
    })
}

/// `write` then `rm` a file, with `ls` showing it come and go.
pub async fn write_and_remove(term: &Term) -> Step {
    let text = files::write("tour/scratch.txt", "here for a moment").await?;
    show(term, "write tour/scratch.txt here for a moment", &text).await;
    let listing = files::ls("tour").await?;
    show(term, "ls tour", &listing).await;
    ensure(listing.contains("scratch.txt"), || {
        "scratch.txt is not listed".into()
    })?;
    let text = files::rm("tour/scratch.txt").await?;
    show(term, "rm tour/scratch.txt", &text).await;
    let listing = files::ls("tour").await?;
    show(term, "ls tour", &listing).await;
    ensure(!listing.contains("scratch.txt"), || {
        "scratch.txt is still listed".into()
    })?;
    let text = files::sync().await?;
    show(term, "sync", &text).await;
    Ok(())
}

fn stream_bytes(index: usize) -> Vec<u8> {
    (0..STREAM_BYTES)
        .map(|i| (i * 7 + index * 13) as u8)
        .collect()
}

/// Write a stream of files, killing the block driver partway; every write must succeed
/// and read back once synced.
pub async fn kill_block_while_writing(term: &Term) -> Step {
    let files = Files::begin()
        .await
        .map_err(|error| format!("no file service: {error}"))?;
    let name = |index: usize| format!("/tour/stream{index}.bin");
    term.write(&format!(
        "keel> (write {STREAM_FILES} files of {} KiB; kill block after {KILL_AFTER})\n",
        STREAM_BYTES / 1024
    ))
    .await;
    for index in 0..STREAM_FILES {
        if index == KILL_AFTER {
            names::kill(keel_block::NAME)
                .map_err(|error| format!("init refused the kill: {error}"))?;
            term.write("killed block; init restarts it\n").await;
        }
        let written = files.write_file(&name(index), &stream_bytes(index)).await;
        written.map_err(|error| format!("writing {}: {error}", name(index)))?;
    }
    files
        .sync()
        .await
        .map_err(|error| format!("sync: {error}"))?;
    let mut wrong: Vec<String> = Vec::new();
    for index in 0..STREAM_FILES {
        let read = files.read_file(&name(index)).await;
        if read.as_deref() != Ok(&stream_bytes(index)[..]) {
            wrong.push(name(index));
        }
        let _ = files.client().remove(&name(index)).await;
    }
    let _ = files.sync().await;
    term.write(&format!(
        "{} of {STREAM_FILES} files read back whole after the driver's restart\n",
        STREAM_FILES - wrong.len()
    ))
    .await;
    ensure(wrong.is_empty(), || {
        format!("these did not read back: {wrong:?}")
    })
}
