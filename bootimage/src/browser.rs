//! `cargo boot test browser`: the status page in a real browser. The demo boots in the
//! background, headless Chromium opens the page through the forwarded port and saves a
//! screenshot to `target/keel-status.png`, so a person can see what it shows. Not part of
//! `cargo test`: it needs Chromium (`apt-get install -y --no-install-recommends chromium`).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::background;
use crate::qemu::{Accel, Nic};
use crate::{Error, Result, web, workspace_root};

const BROWSERS: &[&str] = &["chromium", "chromium-browser"];
/// How long the browser may take to load and draw the page.
const BROWSER_TIME: Duration = Duration::from_secs(90);

/// The installed browser's command, or how to install one.
fn browser() -> Result<&'static str> {
    BROWSERS
        .iter()
        .copied()
        .find(|name| {
            Command::new(name)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
        .ok_or_else(|| {
            Error::new("no Chromium here: apt-get install -y --no-install-recommends chromium")
        })
}

/// Boot, screenshot, check the file; its path.
pub fn run(accel: Accel) -> Result<PathBuf> {
    let browser = browser()?;
    let port = web::free_port().map_err(|e| Error::new(format!("no free port: {e}")))?;
    let guest = background::demo(
        accel,
        Nic::http(port),
        false,
        Duration::from_secs(600),
        "browser-disk",
    )?;
    if !web::wait_for_page(port, Duration::from_secs(300), || !guest.running()) {
        return Err(Error::new("the page never answered"));
    }
    let target = workspace_root().join("target");
    let shot = target.join("keel-status.png");
    let profile = target.join("browser-profile");
    // A fresh profile each time: nothing from an earlier run changes what is drawn.
    let _ = std::fs::remove_dir_all(&profile);
    let _ = std::fs::remove_file(&shot);
    let mut child = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,1500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(web::url(port))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| Error::new(format!("starting {browser}: {e}")))?;
    let deadline = Instant::now() + BROWSER_TIME;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(200)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    match status {
        Some(status) if status.success() && size > 0 => Ok(shot),
        Some(status) => Err(Error::new(format!(
            "{browser} ended with {status} and a screenshot of {size} bytes"
        ))),
        None => Err(Error::new(format!("{browser} took over {BROWSER_TIME:?}"))),
    }
}
