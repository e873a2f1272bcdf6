//! The file commands: `ls`, `cat`, `write`, `rm`, `mkdir`, `df`, `sync`, on the file
//! service. Each command connects afresh (a session only for `cat` and `write`), so a
//! restarted file service is simply found again. Paths without a leading `/` start at the
//! root: there is no current directory.

use alloc::format;
use alloc::string::String;
use core::fmt::Write;

use fs::{Entry, Files, FsClient, Kind, Usage};

type Outcome = Result<String, String>;

fn client() -> Result<FsClient, String> {
    FsClient::connect_named(fs::NAME).map_err(|error| format!("no file service: {error}"))
}

async fn session() -> Result<Files, String> {
    Files::begin()
        .await
        .map_err(|error| format!("no file service: {error}"))
}

/// `path` made absolute.
pub fn absolute(path: &str) -> String {
    match path.strip_prefix('/') {
        Some(_) => path.into(),
        None => format!("/{path}"),
    }
}

/// `ls DIR`'s listing: one line per entry, directories marked with a `/`.
pub fn format_listing(entries: &[Entry]) -> String {
    let mut text = String::new();
    for entry in entries {
        let _ = match entry.stat.kind {
            Kind::Directory => writeln!(text, "{:>10}  {}/", "", entry.name),
            Kind::File => writeln!(text, "{:>10}  {}", entry.stat.size, entry.name),
        };
    }
    if entries.is_empty() {
        text.push_str("(empty)\n");
    }
    text
}

pub fn format_usage(usage: &Usage) -> String {
    let kib = |bytes: u64| bytes / 1024;
    format!(
        "disk: {} KiB, {} KiB used, {} KiB free\n",
        kib(usage.total),
        kib(usage.total - usage.free),
        kib(usage.free)
    )
}

pub async fn ls(dir: &str) -> Outcome {
    let dir = absolute(dir);
    let entries = client()?.list(&dir).await;
    let entries = entries.map_err(|error| format!("{error}"))?;
    entries
        .map(|entries| format_listing(&entries))
        .map_err(|error| format!("{dir}: {error}"))
}

pub async fn cat(file: &str) -> Outcome {
    let file = absolute(file);
    let bytes = session().await?.read_file(&file).await;
    let bytes = bytes.map_err(|error| format!("{file}: {error}"))?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// `write FILE TEXT`: the file holds TEXT and a newline, synced to the disk.
pub async fn write(file: &str, text: &str) -> Outcome {
    let file = absolute(file);
    let files = session().await?;
    let mut line = String::from(text);
    line.push('\n');
    let written = match files.write_file(&file, line.as_bytes()).await {
        Ok(()) => files.sync().await,
        Err(error) => Err(error),
    };
    written.map_err(|error| format!("{file}: {error}"))?;
    Ok(format!("wrote {} bytes to {file}\n", line.len()))
}

pub async fn rm(path: &str) -> Outcome {
    let path = absolute(path);
    let removed = client()?.remove(&path).await;
    removed
        .map_err(|error| format!("{error}"))?
        .map_err(|error| format!("{path}: {error}"))?;
    Ok(format!("removed {path}\n"))
}

pub async fn mkdir(dir: &str) -> Outcome {
    let dir = absolute(dir);
    let made = client()?.mkdir(&dir).await;
    made.map_err(|error| format!("{error}"))?
        .map_err(|error| format!("{dir}: {error}"))?;
    Ok(format!("made {dir}\n"))
}

pub async fn df() -> Result<Usage, String> {
    let usage = client()?.usage().await;
    usage
        .map_err(|error| format!("{error}"))?
        .map_err(|error| format!("{error}"))
}

pub async fn sync() -> Outcome {
    let synced = client()?.sync().await;
    synced
        .map_err(|error| format!("{error}"))?
        .map_err(|error| format!("{error}"))?;
    Ok("synced: everything written is on the disk\n".into())
}
