//! The demo's disk: `target/keel-disk.img`, a FAT32 image made on first use (with a README
//! in it) and kept across runs, so files written in one boot are there in the next.
//! Images are made and checked with the host's own tools: mtools and `fsck.vfat`.

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::Context;
use crate::setup::{self, Tools};
use crate::{Error, Result};

/// The disk's size: 64 MiB, FAT32 with 512-byte clusters (mformat's choice for it).
pub const DISK_BYTES: u64 = 64 << 20;

/// What a new disk holds, as `README.TXT`.
const README: &str = "\
This is Keel's disk: a FAT32 image that `cargo boot` attaches as a virtio-blk device.
Files written in Keel (`write NAME TEXT` at the shell, kv's store) stay here across boots.

From the host, with mtools:
  mdir  -i target/keel-disk.img ::                      list the files
  mcopy -i target/keel-disk.img ::README.TXT .          copy a file out
  mcopy -i target/keel-disk.img notes.txt ::NOTES.TXT   copy a file in
`cargo boot --fresh-disk` starts over with a new disk.
";

/// mtools makes and fills images.
pub const MTOOLS: Tools = Tools {
    what: "mtools",
    programs: &["mformat", "mcopy"],
    files: &[],
    packages: &["mtools"],
};

/// `fsck.vfat` checks them (in /usr/sbin, which a user's PATH may lack).
pub const DOSFSTOOLS: Tools = Tools {
    what: "dosfstools",
    programs: &[],
    files: &[FSCK],
    packages: &["dosfstools"],
};

const FSCK: &str = "/usr/sbin/fsck.vfat";

/// The demo's disk, made if it is not there yet, holds no volume (QEMU's runs make a
/// missing disk blank), or if `fresh`.
pub fn demo_disk(fresh: bool) -> Result<PathBuf> {
    let path = crate::check::demo_disk();
    if fresh || !formatted(&path) {
        make_demo(&path)?;
        println!("bootimage: made a new disk, {}", path.display());
    }
    Ok(path)
}

/// Whether `path` starts with a boot sector (its signature, 0x55 0xaa at 510): a blank or
/// missing image does not, and so holds nothing to keep.
fn formatted(path: &Path) -> bool {
    let mut sector = [0u8; 512];
    File::open(path)
        .and_then(|mut file| file.read_exact(&mut sector))
        .is_ok_and(|()| sector[510..] == [0x55, 0xaa])
}

/// A new disk as the demo's starts: empty but for its README.
pub fn make_demo(path: &Path) -> Result<()> {
    make(path, &[("README.TXT", README.as_bytes())])
}

/// A new FAT32 image of [`DISK_BYTES`] at `path` holding `files` (path in the image,
/// bytes). Made under a temporary name first, so an interrupted run never leaves half a
/// disk.
pub fn make(path: &Path, files: &[(&str, &[u8])]) -> Result<()> {
    setup::ensure(&MTOOLS)?;
    let partial = path.with_extension("partial");
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).context(format!("creating {}", dir.display()))?;
    }
    File::create(&partial)
        .and_then(|file| file.set_len(DISK_BYTES))
        .context(format!("creating {}", partial.display()))?;
    mtools(
        Command::new("mformat")
            .arg("-i")
            .arg(&partial)
            .args(["-F", "-v", "KEEL", "::"]),
    )?;
    for (name, bytes) in files {
        write_file(&partial, name, bytes)?;
    }
    fs::rename(&partial, path).context(format!("renaming to {}", path.display()))
}

/// Put `bytes` in an image as `name` (`dir/file`: the directories are made if need be).
pub fn write_file(image: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    let mut dir = String::new();
    for part in name
        .split('/')
        .rev()
        .skip(1)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
    {
        dir = format!("{dir}/{part}");
        let listed = Command::new("mdir")
            .arg("-i")
            .arg(image)
            .arg(format!("::{dir}"))
            .env("MTOOLS_SKIP_CHECK", "1")
            .output()
            .context("running mdir")?;
        if !listed.status.success() {
            mtools(
                Command::new("mmd")
                    .arg("-i")
                    .arg(image)
                    .arg(format!("::{dir}")),
            )?;
        }
    }
    let source = image.with_extension("file");
    fs::write(&source, bytes).context(format!("writing {}", source.display()))?;
    let copied = mtools(
        Command::new("mcopy")
            .args(["-o", "-i"])
            .arg(image)
            .arg(&source)
            .arg(format!("::{name}")),
    );
    let _ = fs::remove_file(&source);
    copied
}

/// Run an mtools command; its complaint is the error.
fn mtools(command: &mut Command) -> Result<()> {
    let output = command
        .env("MTOOLS_SKIP_CHECK", "1")
        .output()
        .context(format!("running {command:?}"))?;
    if !output.status.success() {
        return Err(Error::new(format!(
            "{command:?}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

/// Run `fsck.vfat -n` (check, change nothing) on an image: `Ok` when it is clean, else
/// what fsck said.
pub fn fsck(path: &Path) -> Result<std::result::Result<(), String>> {
    setup::ensure(&DOSFSTOOLS)?;
    let output = Command::new(FSCK)
        .arg("-n")
        .arg(path)
        .output()
        .context(format!("running {FSCK}"))?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(if output.status.success() {
        Ok(())
    } else {
        Err(said)
    })
}

/// A file's bytes from an image, read with `mcopy`.
pub fn read_file(path: &Path, name: &str) -> Result<Vec<u8>> {
    let out = path.with_extension("read");
    let copied = mtools(
        Command::new("mcopy")
            .args(["-n", "-o", "-i"])
            .arg(path)
            .arg(format!("::{name}"))
            .arg(&out),
    );
    let bytes = copied.and_then(|()| fs::read(&out).context(format!("reading {}", out.display())));
    let _ = fs::remove_file(&out);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_disk_is_clean_fat32_with_its_readme() {
        let path = std::env::temp_dir().join(format!("keel-disk-test-{}.img", std::process::id()));
        make_demo(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), DISK_BYTES);
        write_file(&path, "a/b/deep file.txt", b"deep").unwrap();
        assert!(formatted(&path));
        let blank = path.with_extension("blank");
        crate::qemu::blank_disk(&blank).unwrap();
        assert!(!formatted(&blank) && !formatted(&path.with_extension("missing")));
        fs::remove_file(blank).unwrap();
        assert_eq!(fsck(&path).unwrap(), Ok(()));
        assert_eq!(read_file(&path, "README.TXT").unwrap(), README.as_bytes());
        assert_eq!(read_file(&path, "a/b/deep file.txt").unwrap(), b"deep");
        assert!(read_file(&path, "NOTHERE.TXT").is_err());
        fs::remove_file(path).unwrap();
    }
}
