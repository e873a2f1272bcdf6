//! `cargo boot`: build the guest crates and boot them under QEMU (see [`USAGE`]).

use std::io::{self, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bootimage::bench;
use bootimage::check::{self, Check, INIT_STARTED};
use bootimage::image::{self, Image};
use bootimage::qemu::{AccelChoice, Boot, Console, Qemu, detect_accel};
use bootimage::status::Exit;
use bootimage::{
    Error, Result, browser, chaos, disk, fuzz, gdb, guest, iso, manifest, netbench, setup, web,
};

const USAGE: &str = "\
usage: cargo boot [--smp N] [COMMAND]

  --smp N          boot QEMU with N cores, 1 to 8 (default: 2 for the demo, image and iso;
                   1 for the rest; the benchmarks run on one, bench smp on two)

commands:
  (none) [--http-port N]
                   build and boot the demo: kernel, init, hello. With a terminal on stdin the
                   serial console is yours (quit with Ctrl-A X); without one the run is
                   scripted: 60 s timeout, exit 0 only if the guest powers off with success.
                   The disk, target/keel-disk.img (FAT32), is made on first use and kept.
                   The guest's web server is forwarded from 127.0.0.1:N (default 8080); the
                   URL is printed once the page answers
  --fresh-disk     the same, on a new disk (the options go together, in any order)
  image            build the demo image and print its files and the QEMU command
  image --iso      build the demo image as a GRUB ISO: target/keel.iso
  iso              build target/keel.iso and boot the demo from it
  test [SUITE...]  run the in-guest test suites (default: all)
  test browser     boot the demo and have headless Chromium screenshot the status page
                   into target/keel-status.png (needs chromium; not in `cargo test`)
  bench [--cycles] [--filter SUBSTR] [--compare FILE] [--check] [--profile]
                   run the benchmarks (tests/bench) under -icount shift=0, where figures are
                   exact instruction counts; print a table and write target/bench/latest.json.
                   --cycles: real time instead (cycles and ns; noisy under emulation)
                   --filter: only benchmarks whose names contain SUBSTR (NAME$: that one)
                   --compare: show the change of each median against an earlier JSON file
                   --check: fail, listing each miss, unless the targets hold (PERFORMANCE.md)
                   --profile: with --filter NAME$, instructions per operation by function
  bench smp [--runs N]
                   the benchmarks of two cores: same_core_call and cross_core_call under
                   icount (instructions of both cores) and in cycles, then N boots (default
                   3) of the scaling run without icount on multi-threaded TCG: operations
                   per second of one client and of two on two cores, and their ratio; fails
                   if port calls scale below 1.7x
  bench net [--cycles]
                   boot the demo under -icount shift=0 and drive its web server from the
                   host: busy guest instructions per GET / (200 in a row) and per MiB of a
                   64 MiB download, requests/s and MB/s (--cycles: without icount)
  fuzz [--calls N] [--seed S]
                   a process without rights makes N random syscalls (default 200000) with
                   edge-case arguments from seed S; passes if the kernel takes them all and,
                   once that process has ended, free frames and every kernel object count
                   are as before. Prints the calls and refusals by error
  chaos [--kills N] [--seed S]
                   kills a random restartable server of system.toml N times (default 50),
                   every few milliseconds, while clients call kv, hello and the console;
                   passes if no idempotent call failed, every write kv acknowledged reads
                   back, and once the system is shut down every frame is back. Prints the
                   kills, calls, failures, restarts and frames
  gdb [PROGRAM]    the demo under QEMU's gdb stub, halted at the start; writes
                   target/gdb/keel.gdb (connect, the kernel's symbols and PROGRAM's) and
                   prints the gdb command to run in another terminal (docs/DEBUGGING.md)
  help             this text
";

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    Demo { fresh_disk: bool, http_port: u16 },
    Image { iso: bool },
    Iso,
    Test(Vec<String>),
    Browser,
    Bench(bench::Options),
    BenchNet { icount: bool },
    BenchSmp(bench::smp::Options),
    Fuzz(fuzz::Options),
    Chaos(chaos::Options),
    Gdb(Option<String>),
}

/// The demo with its options (`--fresh-disk`, `--http-port N`), in any order.
fn demo(args: &[&str]) -> Result<Command, String> {
    let (mut fresh_disk, mut http_port) = (false, web::DEFAULT_HTTP_PORT);
    let mut args = args.iter();
    while let Some(&arg) = args.next() {
        match arg {
            "--fresh-disk" => fresh_disk = true,
            "--http-port" => {
                let port = args.next().copied().unwrap_or("nothing");
                http_port = port.parse().ok().filter(|&port| port != 0).ok_or(format!(
                    "--http-port wants a port number (1-65535), not {port}"
                ))?;
            }
            _ => return Err(format!("unknown option {arg}")),
        }
    }
    Ok(Command::Demo {
        fresh_disk,
        http_port,
    })
}

/// The command and the cores to boot with, or `None` for help.
fn parse(args: &[String]) -> Result<Option<(Command, u32)>, String> {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (asked, args) = match args.as_slice() {
        ["--smp", n, rest @ ..] => match n.parse::<u32>() {
            Ok(cores @ 1..=8) => (Some(cores), rest),
            _ => return Err(format!("--smp takes 1 to 8 cores, not `{n}`")),
        },
        rest => (None, rest),
    };
    let command = parse_command(asked.unwrap_or(1), args)?;
    Ok(command.map(|command| {
        let cores = asked.unwrap_or(match command {
            Command::Demo { .. } | Command::Image { .. } | Command::Iso => check::DEMO_CORES,
            _ => 1,
        });
        (command, cores)
    }))
}

fn parse_command(cores: u32, args: &[&str]) -> Result<Option<Command>, String> {
    Ok(Some(match args {
        [] => demo(&[])?,
        [first, ..] if first.starts_with("--") => demo(args)?,
        ["image"] => Command::Image { iso: false },
        ["image", "--iso"] => Command::Image { iso: true },
        ["iso"] => Command::Iso,
        ["test", "browser"] => Command::Browser,
        ["test", suites @ ..] => Command::Test(suites.iter().map(|s| s.to_string()).collect()),
        ["bench", "smp", options @ ..] => Command::BenchSmp(bench::smp::Options::parse(options)?),
        ["bench", ..] if cores > 1 => return Err("the benchmarks run on one core".into()),
        ["bench", "net"] => Command::BenchNet { icount: true },
        ["bench", "net", "--cycles"] => Command::BenchNet { icount: false },
        ["bench", options @ ..] => Command::Bench(bench::Options::parse(options)?),
        ["fuzz", options @ ..] => Command::Fuzz(fuzz::Options::parse(options)?),
        ["chaos", options @ ..] => Command::Chaos(chaos::Options::parse(options)?),
        ["gdb"] => Command::Gdb(None),
        ["gdb", program] => Command::Gdb(Some(program.to_string())),
        ["help" | "--help" | "-h"] => return Ok(None),
        _ => return Err(format!("unknown arguments: {}", args.join(" "))),
    }))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, cores) = match parse(&args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprint!("bootimage: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let accel = detect_accel();
    println!("bootimage: {accel}");
    match run(command, cores, accel) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("bootimage: error: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command, cores: u32, accel: AccelChoice) -> Result<ExitCode> {
    setup::ensure_guest_target()?;
    match command {
        Command::Demo {
            fresh_disk,
            http_port,
        } => {
            setup::ensure(&setup::QEMU)?;
            disk::demo_disk(fresh_disk)?;
            let image = image::demo_image(&manifest::demo_path(), tour())?;
            boot_demo(Boot::Direct(image), cores, accel, http_port)
        }
        Command::Image { iso: false } => {
            disk::demo_disk(false)?;
            // Whoever runs the printed command has a terminal: no tour.
            print_image(
                &image::demo_image(&manifest::demo_path(), false)?,
                cores,
                accel,
            )?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Image { iso: true } => {
            let path = build_demo_iso(false)?;
            let qemu = Qemu {
                cores,
                ..check::demo_qemu(
                    Boot::Cdrom(path.clone()),
                    accel.accel,
                    web::DEFAULT_HTTP_PORT,
                )
            };
            println!("bootimage: wrote {}", path.display());
            println!("bootimage: boot it with:\n{}", qemu.command_line()?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Iso => {
            setup::ensure(&setup::QEMU)?;
            disk::demo_disk(false)?;
            let path = build_demo_iso(tour())?;
            boot_demo(Boot::Cdrom(path), cores, accel, web::DEFAULT_HTTP_PORT)
        }
        Command::Test(suites) => run_suites(&suites, cores, accel),
        Command::Browser => {
            setup::ensure(&setup::QEMU)?;
            let shot = browser::run(accel.accel)?;
            println!(
                "bootimage: the status page, as Chromium drew it: {}",
                shot.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Bench(options) => bench::run(&options, accel).map(exit_code),
        Command::BenchSmp(options) => bench::smp::run(&options, accel.accel).map(exit_code),
        Command::BenchNet { icount } => {
            setup::ensure(&setup::QEMU)?;
            netbench::run(accel.accel, icount).map(exit_code)
        }
        Command::Fuzz(options) => campaign(cores, || Ok(options.check(accel.accel))),
        Command::Chaos(options) => campaign(cores, || options.check(accel.accel)),
        Command::Gdb(program) => {
            disk::demo_disk(false)?;
            gdb::run(program.as_deref())
        }
    }
}

/// A campaign: one suite boot with the options asked for, built once the guest is.
fn campaign(cores: u32, check: impl FnOnce() -> Result<Check>) -> Result<ExitCode> {
    setup::ensure(&setup::QEMU)?;
    guest::build(guest::TEST_PACKAGES)?;
    let mut check = check()?;
    check.qemu.cores = cores;
    let outcomes = check::run_checks(&[check], 1);
    Ok(exit_code(check::print_summary("bootimage", &outcomes)))
}

fn build_demo_iso(tour: bool) -> Result<std::path::PathBuf> {
    setup::ensure(&setup::GRUB)?;
    let image = image::demo_image(&manifest::demo_path(), tour)?;
    let path = iso::demo_iso_path();
    iso::build(&image, &path)?;
    Ok(path)
}

/// Without a person at the console, init has the shell run its scripted tour.
fn tour() -> bool {
    !io::stdin().is_terminal()
}

fn print_image(image: &Image, cores: u32, accel: AccelChoice) -> Result<()> {
    image.check_files()?;
    println!("bootimage: kernel {}", image.kernel.display());
    for module in &image.modules {
        println!(
            "bootimage: module {} = {} {:?}",
            module.name()?,
            module.path.display(),
            module.args
        );
    }
    let qemu = Qemu {
        cores,
        ..check::demo_qemu(
            Boot::Direct(image.clone()),
            accel.accel,
            web::DEFAULT_HTTP_PORT,
        )
    };
    println!("bootimage: boot it with:\n{}", qemu.command_line()?);
    Ok(())
}

/// Boot the demo: the user's console if stdin is a terminal, else a scripted, timed run.
/// The guest's web server is forwarded from `http_port`.
fn boot_demo(boot: Boot, cores: u32, accel: AccelChoice, http_port: u16) -> Result<ExitCode> {
    let interactive = !tour();
    let mut qemu = check::demo_qemu(boot, accel.accel, http_port);
    if interactive {
        qemu.console = Console::Interactive;
    }
    qemu.echo = true;
    qemu.cores = cores;
    let ended = Arc::new(AtomicBool::new(false));
    let watcher = {
        let ended = ended.clone();
        std::thread::spawn(move || {
            let patience = check::DEMO_TIMEOUT;
            if web::wait_for_page(http_port, patience, || ended.load(Ordering::Relaxed)) {
                println!(
                    "\r\nbootimage: the status page is at {}\r",
                    web::url(http_port)
                );
            }
        })
    };
    if interactive {
        println!("bootimage: serial console on this terminal; quit with Ctrl-A X");
    }
    let mut started = None;
    let run = qemu.run(&mut |line| {
        if started.is_none() && line.text.contains(INIT_STARTED) {
            started = Some(line.at);
            println!(
                "bootimage: first user process after {} ms",
                line.at.as_millis()
            );
        }
    })?;
    ended.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if started.is_none() {
        println!("bootimage: no `{INIT_STARTED}` line");
    }
    // With a person at the console, status 0 is most likely their Ctrl-A X.
    let fine = run.exit.is_success() || (interactive && run.exit == Exit::Status(0));
    println!(
        "bootimage: QEMU ended after {:.1} s: {}",
        run.elapsed.as_secs_f64(),
        run.exit
    );
    Ok(exit_code(fine))
}

/// `cargo boot test`: the named suites (all by default), judged like `cargo test` does.
fn run_suites(names: &[String], cores: u32, accel: AccelChoice) -> Result<ExitCode> {
    if let Some(unknown) = names
        .iter()
        .find(|name| !check::SUITES.contains(&name.as_str()))
    {
        return Err(Error::new(format!(
            "no suite `{unknown}`; the suites are: {}",
            check::SUITES.join(" ")
        )));
    }
    let selected: Vec<&str> = match names {
        [] => check::SUITES.to_vec(),
        names => names.iter().map(String::as_str).collect(),
    };
    setup::ensure(&setup::QEMU)?;
    guest::build(guest::TEST_PACKAGES)?;
    let checks: Vec<Check> = selected
        .iter()
        .map(|suite| check::suite_check(suite, cores, accel.accel))
        .collect::<Result<_>>()?;
    let outcomes = check::run_checks(&checks, check::PARALLEL);
    let passed = check::print_summary("bootimage", &outcomes);
    Ok(exit_code(passed))
}

fn exit_code(success: bool) -> ExitCode {
    if success {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_with_cores(words: &str) -> Result<Option<(Command, u32)>, String> {
        parse(
            &words
                .split_whitespace()
                .map(String::from)
                .collect::<Vec<_>>(),
        )
    }

    fn parse_words(words: &str) -> Result<Option<Command>, String> {
        parse_with_cores(words).map(|parsed| parsed.map(|(command, _)| command))
    }

    #[test]
    fn smp_takes_a_core_count_before_the_command() {
        let demo = Command::Demo {
            fresh_disk: false,
            http_port: 8080,
        };
        assert_eq!(parse_with_cores(""), Ok(Some((demo, 2))));
        let one = Command::Demo {
            fresh_disk: false,
            http_port: 8080,
        };
        assert_eq!(parse_with_cores("--smp 1"), Ok(Some((one, 1))));
        assert_eq!(
            parse_with_cores("image").map(|p| p.map(|(_, cores)| cores)),
            Ok(Some(2))
        );
        assert_eq!(
            parse_with_cores("test threads"),
            Ok(Some((Command::Test(vec!["threads".into()]), 1)))
        );
        assert_eq!(
            parse_with_cores("--smp 4 test threads"),
            Ok(Some((Command::Test(vec!["threads".into()]), 4)))
        );
        assert!(parse_with_cores("--smp 0").is_err());
        assert!(parse_with_cores("--smp 9").is_err());
        assert!(parse_with_cores("--smp 2 bench").is_err());
    }

    #[test]
    fn commands_parse() {
        let demo = |fresh_disk, http_port| {
            Ok(Some(Command::Demo {
                fresh_disk,
                http_port,
            }))
        };
        assert_eq!(parse_words(""), demo(false, 8080));
        assert_eq!(parse_words("--fresh-disk"), demo(true, 8080));
        assert_eq!(parse_words("--http-port 9000"), demo(false, 9000));
        assert_eq!(
            parse_words("--http-port 9000 --fresh-disk"),
            demo(true, 9000)
        );
        assert!(parse_words("--http-port 0").is_err());
        assert!(parse_words("--http-port").is_err());
        assert!(parse_words("--fresh").is_err());
        assert_eq!(
            parse_words("image --iso"),
            Ok(Some(Command::Image { iso: true }))
        );
        assert_eq!(
            parse_words("test memory faults"),
            Ok(Some(Command::Test(vec!["memory".into(), "faults".into()])))
        );
        assert_eq!(parse_words("help"), Ok(None));
        assert!(parse_words("image --cd").is_err());
        assert_eq!(
            parse_words("bench --check"),
            Ok(Some(Command::Bench(bench::Options {
                check: true,
                ..bench::Options::default()
            })))
        );
        assert!(parse_words("bench --fast").is_err());
        assert_eq!(
            parse_words("chaos --kills 1000"),
            Ok(Some(Command::Chaos(chaos::Options {
                kills: 1000,
                ..chaos::Options::default()
            })))
        );
        assert_eq!(
            parse_words("fuzz --calls 1000"),
            Ok(Some(Command::Fuzz(fuzz::Options {
                calls: 1000,
                ..fuzz::Options::default()
            })))
        );
    }
}
