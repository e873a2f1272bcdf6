//! Backtraces with function names: the kernel prints a stack scan after a user fault and
//! after a panic, and bootimage names each address from the ELF symbols
//! (`bootimage::symbols`). Both are booted for real here: the `faults` suite, whose children
//! fault on purpose, and a kernel told to panic at boot (`selftest=panic`).

use std::time::Duration;

use bootimage::check::Check;
use bootimage::image::{Image, Module};
use bootimage::qemu::{Accel, Boot, Console, Qemu};
use bootimage::{guest, setup, symbols};

/// Every annotation bootimage gives for the lines of a run.
fn named(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| symbols::annotate(line))
        .flatten()
        .collect()
}

fn prepare() {
    setup::ensure_guest_target().expect("the guest target");
    setup::ensure(&setup::QEMU).expect("QEMU");
    guest::build(guest::TEST_PACKAGES).expect("the guest programs");
}

#[test]
fn a_user_fault_names_the_faulting_function_and_its_callers() {
    prepare();
    let check = Check::suite("faults", Accel::Tcg);
    let run = check.qemu.run(&mut |_| {}).expect("the faults suite");
    let lines: Vec<String> = run.lines.into_iter().map(|line| line.text).collect();
    let named = named(&lines);
    let log = format!("{}\n----\n{}", lines.join("\n"), named.join("\n"));
    println!("{log}");
    // kchild read-unmapped faults in its `execute`, called from its main (`__keel_main`,
    // which `keel_rt::entry!` makes of it), called from the runtime's start.
    assert!(
        named.iter().any(|l| l.contains("the stack scan of kchild")),
        "no stack scan of a faulting kchild\n{log}"
    );
    assert!(
        named.iter().any(|l| l.contains(" kchild::execute+0x")),
        "the faulting function is not named\n{log}"
    );
    for caller in [" __keel_main+0x", " keel_rt::start::start+0x"] {
        assert!(
            named.iter().any(|l| l.contains(caller)),
            "the caller{caller} is not named\n{log}"
        );
    }
}

#[test]
fn a_kernel_panic_names_the_functions_on_its_stack() {
    prepare();
    let image = Image {
        kernel: guest::binary("kernel"),
        modules: vec![Module::new(guest::binary("ktest"), "memory")],
        cmdline: "selftest=panic".into(),
    };
    let console = Console::Scripted {
        timeout: Duration::from_secs(60),
    };
    let run = Qemu::new(Boot::Direct(image), Accel::Tcg, console)
        .run(&mut |_| {})
        .expect("the boot");
    let lines: Vec<String> = run.lines.into_iter().map(|line| line.text).collect();
    let named = named(&lines);
    let log = format!("{}\n----\n{}", lines.join("\n"), named.join("\n"));
    // Shown with --nocapture: docs/DEBUGGING.md quotes it.
    println!("{log}");
    assert!(
        lines.iter().any(|l| l.contains("KERNEL PANIC")),
        "no panic\n{log}"
    );
    assert!(
        named.iter().any(|l| l.contains(" kernel_main+0x")),
        "kernel_main, which panicked, is not named\n{log}"
    );
}
