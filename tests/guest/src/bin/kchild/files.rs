//! The `files` suite's client that dies holding a file open.

use alloc::format;
use core::time::Duration;

use fs::Files;
use keel_rt::{executor, println};

use crate::Failure;

/// Begin a session with the file service, open (creating) `path`, and sleep until killed.
pub fn holder(path: &str) -> Result<i32, Failure> {
    executor::block_on(async {
        let files = Files::begin()
            .await
            .map_err(|error| Failure::check(format!("beginning a session: {error}")))?;
        files
            .open(path, true)
            .await
            .map_err(|error| Failure::check(format!("opening {path}: {error}")))?;
        println!("files-holder: holds {path} open");
        loop {
            executor::sleep(Duration::from_secs(3600)).await;
        }
    })
}
