//! `cargo boot gdb` for real: the demo under QEMU's gdb stub and gdb in batch mode with the
//! script bootimage writes. A breakpoint in a service's method (hello-service's `greet`),
//! taken in the process called `hello` with `keel-continue-in`, must stop there with the
//! method's frame and its callers named.

use std::net::TcpListener;
use std::process::Command;
use std::thread;
use std::time::Duration;

use bootimage::gdb;
use bootimage::qemu::Console;
use bootimage::{guest, setup, workspace_root};

const BREAKPOINT: &str = "examples/hello-service/src/main.rs:17";

#[test]
fn a_breakpoint_in_a_services_method_stops_in_that_service() {
    setup::ensure_guest_target().expect("the guest target");
    setup::ensure(&setup::QEMU).expect("QEMU");
    setup::ensure(&setup::GDB).expect("gdb");
    // A port nothing listens on now, for QEMU to take.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    // A disk of its own: never the user's, which a `cargo boot` may hold meanwhile.
    let disk = bootimage::workspace_root()
        .join("target")
        .join("gdb-test-disk.img");
    bootimage::disk::make_demo(&disk).expect("the test's disk");
    let qemu = gdb::qemu(
        port,
        Console::Scripted {
            timeout: Duration::from_secs(60),
        },
        disk,
    )
    .expect("the demo image");
    let script = gdb::write_script(port, Some("hello-service")).expect("the gdb script");
    let booted = thread::spawn(move || qemu.run(&mut |_| {}));
    // QEMU listens once it has started; gdb retries its connection for a while anyway.
    thread::sleep(Duration::from_millis(500));
    let output = Command::new("timeout")
        .args(["60", "gdb", "-batch", "-nx", "-x"])
        .arg(&script)
        .args(["-ex", &format!("break {BREAKPOINT}")])
        .args(["-ex", "keel-continue-in hello"])
        .args(["-ex", "keel-process"])
        .args(["-ex", "bt 3"])
        .args(["-ex", "kill"])
        .current_dir(workspace_root())
        .output()
        .expect("running gdb");
    let run = booted.join().expect("the QEMU thread");
    let text = String::from_utf8_lossy(&output.stdout);
    let log = format!(
        "gdb said:\n{text}\n{}\nQEMU: {:?}",
        String::from_utf8_lossy(&output.stderr),
        run.map(|run| run.exit)
    );
    assert!(
        text.contains("Breakpoint 1, hello_service::"),
        "no stop in hello_service\n{log}"
    );
    assert!(
        text.lines().any(|line| line.trim() == "hello"),
        "keel-process did not name the `hello` process\n{log}"
    );
    assert!(
        text.contains("#1  hello_service::") && text.contains("keel_rt::service::server"),
        "the backtrace does not show the dispatch into the method\n{log}"
    );
    // The breakpoint is in hello-service's own code, which the demo built.
    assert!(guest::binary("hello-service").is_file());
}
