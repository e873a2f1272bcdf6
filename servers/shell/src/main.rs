//! `shell`: Keel's command line, on the console (found by name, found again when it
//! restarts). `help` lists the commands; the console edits the line (Backspace, Ctrl-U)
//! and Ctrl-C abandons it. `shell tour` runs a scripted, self-checking walk through the
//! system instead and exits with the verdict (0: every step passed); init runs it to
//! completion and then powers off.
#![no_std]
#![no_main]

extern crate alloc;

mod bench;
mod caps;
mod commands;
mod files;
mod system;
mod term;
mod tour;
mod tour_disk;

use commands::Next;
use keel_rt::println;
use term::{Input, Term};

const PROMPT: &str = "keel> ";

keel_rt::async_entry!(main);

async fn main(args: &'static str) -> i32 {
    let term = match Term::connect() {
        Ok(term) => term,
        Err(why) => {
            println!("shell: no console: {why}");
            return 1;
        }
    };
    if args.split_whitespace().any(|word| word == "tour") {
        return if tour::run(&term).await { 0 } else { 1 };
    }
    interact(&term).await
}

/// Prompt, read, run, until `exit` (or the console is gone for good).
async fn interact(term: &Term) -> i32 {
    term.write("Keel shell: `help` lists the commands.\n").await;
    loop {
        term.write(PROMPT).await;
        match term.read_line().await {
            Ok(Input::Line(line)) => {
                if commands::execute(&line, term).await == Next::Exit {
                    return 0;
                }
            }
            // The line is gone; prompt again.
            Ok(Input::Interrupted | Input::Reconnected) => {}
            Err(why) => {
                println!("shell: the console is gone and did not come back: {why}");
                return 1;
            }
        }
    }
}
