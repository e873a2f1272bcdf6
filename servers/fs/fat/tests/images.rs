//! keel-fat against real FAT32 images: made by `mformat`, read and written by mtools,
//! checked by `fsck.vfat -n` (dosfstools) after every change this crate makes.

use std::fs::{self, File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::Command;
use std::task::{Context, Poll, Waker};

use keel_fat::{BlockDevice, Error, Kind, SECTOR, Volume};

/// An image file as a block device.
struct Disk(File);

impl BlockDevice for Disk {
    fn sectors(&self) -> u64 {
        self.0.metadata().expect("image metadata").len() / SECTOR as u64
    }
    async fn read(&self, sector: u64, buf: &mut [u8]) -> Result<(), Error> {
        self.0
            .read_exact_at(buf, sector * SECTOR as u64)
            .map_err(|_| Error::Device)
    }
    async fn write(&self, sector: u64, buf: &[u8]) -> Result<(), Error> {
        self.0
            .write_all_at(buf, sector * SECTOR as u64)
            .map_err(|_| Error::Device)
    }
    async fn flush(&self) -> Result<(), Error> {
        self.0.sync_data().map_err(|_| Error::Device)
    }
}

/// Run a future whose device never makes it wait.
fn run<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("a file-backed disk never waits"),
    }
}

/// A fresh 64 MiB FAT32 image, as `cargo boot` makes the demo disk.
fn image(test: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("keel-fat-{test}-{}.img", std::process::id()));
    let _ = fs::remove_file(&path);
    File::create(&path).unwrap().set_len(64 << 20).unwrap();
    tool(
        "mformat",
        &["-i", path.to_str().unwrap(), "-F", "-v", "KEEL", "::"],
    );
    path
}

fn tool(name: &str, args: &[&str]) -> String {
    let output = Command::new(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name} ({e}): install mtools and dosfstools"));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{name} {args:?} failed: {text}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    text
}

/// `fsck.vfat -n` must find nothing to repair.
fn assert_clean(path: &Path) {
    // In /usr/sbin, which a user's PATH may lack.
    let fsck = ["/usr/sbin/fsck.vfat", "fsck.vfat"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let output = Command::new(fsck.unwrap_or("fsck.vfat"))
        .args(["-n", path.to_str().unwrap()])
        .output()
        .expect("fsck.vfat (dosfstools) is installed");
    assert!(
        output.status.success(),
        "fsck.vfat -n {path:?} found problems:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn mount(path: &Path) -> Volume<Disk> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    run(Volume::mount(Disk(file))).expect("mounting")
}

/// A file's bytes as mtools reads them.
fn mtools_read(path: &Path, file: &str) -> Vec<u8> {
    let out = path.with_extension(format!("out{}", file.len()));
    tool(
        "mcopy",
        &[
            "-n",
            "-o",
            "-i",
            path.to_str().unwrap(),
            &format!("::{file}"),
            out.to_str().unwrap(),
        ],
    );
    let bytes = fs::read(&out).unwrap();
    fs::remove_file(out).unwrap();
    bytes
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

fn write_file(volume: &mut Volume<Disk>, path: &str, data: &[u8]) {
    let file = run(volume.open(path, true)).unwrap();
    run(volume.truncate(file, 0)).unwrap();
    run(volume.write(file, 0, data)).unwrap();
    volume.close(file).unwrap();
}

fn read_file(volume: &mut Volume<Disk>, path: &str) -> Vec<u8> {
    let file = run(volume.open(path, false)).unwrap();
    let mut data = vec![0; volume.size(file).unwrap() as usize];
    assert_eq!(run(volume.read(file, 0, &mut data)).unwrap(), data.len());
    volume.close(file).unwrap();
    data
}

#[test]
fn files_written_here_are_read_by_mtools_and_fsck_finds_the_volume_clean() {
    let path = image("written");
    let mut volume = mount(&path);
    run(volume.mkdir("/docs")).unwrap();
    run(volume.mkdir("/docs/Deeper Still")).unwrap();
    write_file(&mut volume, "/docs/a long name.txt", b"long names work\n");
    write_file(&mut volume, "/README.TXT", b"short\n");
    write_file(&mut volume, "/docs/Deeper Still/lower.txt", b"lower\n");
    // A large file written in pieces at unaligned offsets.
    let big = pattern(3 << 20, 7);
    let file = run(volume.open("/big.bin", true)).unwrap();
    let mut at = 0;
    for piece in big.chunks(100_003) {
        run(volume.write(file, at as u64, piece)).unwrap();
        at += piece.len();
    }
    volume.close(file).unwrap();
    run(volume.sync()).unwrap();
    drop(volume);

    assert_clean(&path);
    assert_eq!(
        mtools_read(&path, "docs/a long name.txt"),
        b"long names work\n"
    );
    assert_eq!(mtools_read(&path, "README.TXT"), b"short\n");
    assert_eq!(
        mtools_read(&path, "docs/Deeper Still/lower.txt"),
        b"lower\n"
    );
    assert_eq!(mtools_read(&path, "big.bin"), big);
    let listing = tool("mdir", &["-i", path.to_str().unwrap(), "-b", "::/docs"]);
    assert!(listing.contains("a long name.txt"), "{listing}");
    fs::remove_file(path).unwrap();
}

#[test]
fn files_mtools_wrote_are_read_here() {
    let path = image("mtools");
    let source = path.with_extension("src");
    let data = pattern(200_000, 3);
    fs::write(&source, &data).unwrap();
    let image = path.to_str().unwrap();
    tool("mmd", &["-i", image, "::Some Dir"]);
    tool(
        "mcopy",
        &[
            "-i",
            image,
            source.to_str().unwrap(),
            "::Some Dir/Mixed Case Name.dat",
        ],
    );
    tool(
        "mcopy",
        &["-i", image, source.to_str().unwrap(), "::PLAIN.DAT"],
    );
    let mut volume = mount(&path);
    let names: Vec<String> = run(volume.list("/"))
        .unwrap()
        .into_iter()
        .map(|l| l.name)
        .collect();
    assert_eq!(names, ["Some Dir", "PLAIN.DAT"]);
    let inner = run(volume.list("/some dir")).unwrap();
    assert_eq!(inner.len(), 1);
    assert_eq!(inner[0].name, "Mixed Case Name.dat");
    assert_eq!(inner[0].stat.size, data.len() as u64);
    assert_eq!(
        read_file(&mut volume, "/Some Dir/mixed case name.DAT"),
        data
    );
    assert_eq!(read_file(&mut volume, "plain.dat"), data);
    // A read from the middle, across sectors and clusters.
    let file = run(volume.open("/PLAIN.DAT", false)).unwrap();
    let mut middle = vec![0; 5000];
    assert_eq!(run(volume.read(file, 777, &mut middle)).unwrap(), 5000);
    assert_eq!(middle, data[777..5777]);
    assert_eq!(
        run(volume.read(file, data.len() as u64 - 10, &mut middle)).unwrap(),
        10
    );
    assert_eq!(
        run(volume.read(file, data.len() as u64 + 10, &mut middle)).unwrap(),
        0
    );
    fs::remove_file(source).unwrap();
    fs::remove_file(path).unwrap();
}

#[test]
fn rename_truncate_and_remove_keep_the_volume_clean() {
    let path = image("ops");
    let mut volume = mount(&path);
    run(volume.mkdir("/a")).unwrap();
    run(volume.mkdir("/a/inner")).unwrap();
    run(volume.mkdir("/b")).unwrap();
    write_file(&mut volume, "/a/inner/file one.txt", &pattern(5000, 1));
    write_file(&mut volume, "/a/shrink.bin", &pattern(40_000, 2));
    write_file(&mut volume, "/a/grow.bin", b"0123456789");
    write_file(&mut volume, "/gone.txt", b"soon gone");
    // A directory moves into another: its `..` must follow.
    run(volume.rename("/a/inner", "/b/moved inner")).unwrap();
    run(volume.rename("/b/moved inner/file one.txt", "/b/moved inner/FILE1.TXT")).unwrap();
    // Only the case changes: the same entry, renamed in place.
    run(volume.rename("/a/grow.bin", "/a/GROW.bin")).unwrap();
    assert_eq!(
        run(volume.rename("/b", "/b/moved inner/b")),
        Err(Error::InvalidPath)
    );
    assert_eq!(
        run(volume.rename("/a/shrink.bin", "/gone.txt")),
        Err(Error::AlreadyExists)
    );
    let shrink = run(volume.open("/a/shrink.bin", false)).unwrap();
    run(volume.truncate(shrink, 1000)).unwrap();
    volume.close(shrink).unwrap();
    let grow = run(volume.open("/a/grow.bin", false)).unwrap();
    run(volume.truncate(grow, 3000)).unwrap();
    run(volume.write(grow, 5000, b"end")).unwrap();
    volume.close(grow).unwrap();
    assert_eq!(run(volume.remove("/b")), Err(Error::DirectoryNotEmpty));
    let busy = run(volume.open("/gone.txt", false)).unwrap();
    assert_eq!(run(volume.remove("/gone.txt")), Err(Error::Busy));
    volume.close(busy).unwrap();
    run(volume.remove("/gone.txt")).unwrap();
    run(volume.sync()).unwrap();
    drop(volume);

    assert_clean(&path);
    assert_eq!(
        mtools_read(&path, "b/moved inner/FILE1.TXT"),
        pattern(5000, 1)
    );
    assert_eq!(mtools_read(&path, "a/shrink.bin"), pattern(1000, 2));
    let mut grown = b"0123456789".to_vec();
    grown.resize(5000, 0);
    grown.extend_from_slice(b"end");
    assert_eq!(mtools_read(&path, "a/GROW.bin"), grown);
    let root = tool("mdir", &["-i", path.to_str().unwrap(), "-b", "::/"]);
    assert!(!root.contains("gone"), "{root}");
    // What mtools sees is what the volume sees after a remount.
    let mut volume = mount(&path);
    assert_eq!(run(volume.stat("/a/grow.bin")).unwrap().size, 5003);
    assert_eq!(
        run(volume.stat("/b/moved inner")).unwrap().kind,
        Kind::Directory
    );
    assert_eq!(run(volume.stat("/a/inner")), Err(Error::NotFound));
    fs::remove_file(path).unwrap();
}

#[test]
fn a_power_cut_before_sync_finds_the_last_synced_state_clean() {
    let path = image("cut");
    let mut volume = mount(&path);
    write_file(&mut volume, "/kept.txt", &pattern(70_000, 5));
    run(volume.sync()).unwrap();
    // None of this is synced: the power goes before.
    run(volume.remove("/kept.txt")).unwrap();
    write_file(&mut volume, "/new.txt", &pattern(300_000, 6));
    run(volume.mkdir("/new dir")).unwrap();
    drop(volume);

    assert_clean(&path);
    assert_eq!(mtools_read(&path, "kept.txt"), pattern(70_000, 5));
    let root = tool("mdir", &["-i", path.to_str().unwrap(), "-b", "::/"]);
    assert!(
        !root.contains("new"),
        "unsynced entries reached the disk: {root}"
    );
    fs::remove_file(path).unwrap();
}

#[test]
fn a_full_disk_says_no_space_and_stays_clean() {
    let path = image("full");
    let mut volume = mount(&path);
    let file = run(volume.open("/fill.bin", true)).unwrap();
    let mut written = 0u64;
    // Megabytes while they fit, then sectors, until not one more fits.
    for chunk in [vec![0xa5u8; 1 << 20], vec![0x5a; 512]] {
        let error = loop {
            match run(volume.write(file, written, &chunk)) {
                Ok(()) => written += chunk.len() as u64,
                Err(error) => break error,
            }
        };
        assert_eq!(error, Error::NoSpace);
    }
    assert!(written > 60 << 20, "only {written} bytes fit");
    assert_eq!(run(volume.mkdir("/more")), Err(Error::NoSpace));
    volume.close(file).unwrap();
    run(volume.sync()).unwrap();
    drop(volume);
    assert_clean(&path);
    fs::remove_file(path).unwrap();
}

#[test]
fn bad_paths_and_files_are_errors() {
    let path = image("bad");
    let mut volume = mount(&path);
    write_file(&mut volume, "/file", b"x");
    assert_eq!(run(volume.open("/nothere", false)), Err(Error::NotFound));
    assert_eq!(
        run(volume.open("/file/below", true)),
        Err(Error::NotADirectory)
    );
    assert_eq!(run(volume.open("/", true)), Err(Error::InvalidPath));
    assert_eq!(run(volume.open("/a:b", true)), Err(Error::InvalidName));
    assert_eq!(run(volume.mkdir("/file")), Err(Error::AlreadyExists));
    run(volume.mkdir("/dir")).unwrap();
    assert_eq!(run(volume.open("/dir", false)), Err(Error::IsADirectory));
    assert_eq!(run(volume.remove("/")), Err(Error::InvalidPath));
    let file = run(volume.open("/file", false)).unwrap();
    assert_eq!(
        run(volume.write(file, u64::from(u32::MAX), b"x")),
        Err(Error::TooLarge)
    );
    volume.close(file).unwrap();
    assert_eq!(volume.close(file), Err(Error::BadFile));
    assert_eq!(run(volume.read(file, 0, &mut [0; 4])), Err(Error::BadFile));
    fs::remove_file(path).unwrap();
}

#[test]
fn a_damaged_disk_gives_errors_not_panics() {
    let path = image("damaged");
    let mut volume = mount(&path);
    run(volume.mkdir("/dir")).unwrap();
    for n in 0..20 {
        write_file(
            &mut volume,
            &format!("/dir/file number {n}.txt"),
            &pattern(3000 + n * 700, n as u8),
        );
    }
    run(volume.sync()).unwrap();
    drop(volume);
    let pristine = fs::read(&path).unwrap();
    // Scribble over the FAT and the first directory clusters, seeded, many times.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for round in 0..200 {
        let mut bytes = pristine.clone();
        for _ in 0..1 + round % 16 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let region = if seed.is_multiple_of(2) {
                32 * 512..40 * 512
            } else {
                2050 * 512..2100 * 512
            };
            let at = region.start + (seed >> 8) as usize % region.len();
            bytes[at] = (seed >> 40) as u8;
        }
        fs::write(&path, &bytes).unwrap();
        let Ok(mut volume) = run(Volume::mount(Disk(
            OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .unwrap(),
        ))) else {
            continue;
        };
        let _ = run(volume.list("/dir"));
        for n in 0..20 {
            let name = format!("/dir/file number {n}.txt");
            if let Ok(file) = run(volume.open(&name, false)) {
                let mut buf = vec![0; 20_000];
                let _ = run(volume.read(file, 0, &mut buf));
                let _ = run(volume.write(file, 100, b"more"));
                let _ = volume.close(file);
            }
        }
        let _ = run(volume.rename("/dir/file number 1.txt", "/moved.txt"));
        let _ = run(volume.remove("/dir/file number 2.txt"));
    }
    // A boot sector that is not one is refused.
    let mut bytes = pristine;
    bytes[510] = 0;
    fs::write(&path, &bytes).unwrap();
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    assert!(matches!(
        run(Volume::mount(Disk(file))),
        Err(Error::Corrupt(_))
    ));
    fs::remove_file(path).unwrap();
}
