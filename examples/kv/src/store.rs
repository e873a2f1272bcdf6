//! Where the kv server keeps its map: in a file on the disk when the file service is
//! there (`/kv-store.bin`, rewritten and synced before a change is acknowledged), in
//! memory otherwise (a system without a disk, the test suites' own manifests).

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use fs::Files;
use keel_rt::println;
use keel_rt::sync::AsyncMutex;

/// The store's file.
pub const PATH: &str = "/kv-store.bin";
/// Tries to save across file-service restarts before a change fails.
const TRIES: u32 = 8;

pub type Map = BTreeMap<String, Vec<u8>>;

/// The file service's session, begun again when the service restarts; held by one save
/// at a time, so snapshots reach the file in the order they were taken.
pub struct Disk(AsyncMutex<Option<Files>>);

impl Disk {
    /// A session with the file service, if there is one, and the map the file holds.
    pub async fn open() -> (Option<Disk>, Map) {
        let files = match Files::begin().await {
            Ok(files) => files,
            Err(error) => {
                println!("kv: no file service ({error}): the store lives in memory only");
                return (None, Map::new());
            }
        };
        let map = match files.read_file(PATH).await {
            Ok(bytes) => decode(&bytes).unwrap_or_else(|| {
                println!("kv: {PATH} does not parse: starting empty");
                Map::new()
            }),
            Err(_) => Map::new(),
        };
        println!("kv: {} keys from {PATH}", map.len());
        (Some(Disk(AsyncMutex::new(Some(files)))), map)
    }

    /// Write `map` to the file and sync it; done only when it answers.
    pub async fn save(&self, map: &Map) -> Result<(), fs::Error> {
        let bytes = encode(map);
        let mut session = self.0.lock().await;
        let mut last = fs::Error::Fs(fs::FsError::Device);
        for _ in 0..TRIES {
            // A session lost with its server is begun again, on the restarted one.
            let files = match session.take() {
                Some(files) => files,
                None => match Files::begin().await {
                    Ok(files) => files,
                    Err(error) => {
                        last = error;
                        continue;
                    }
                },
            };
            let saved = match files.write_file(PATH, &bytes).await {
                Ok(()) => files.sync().await,
                Err(error) => Err(error),
            };
            *session = Some(files);
            match saved {
                Ok(()) => return Ok(()),
                // Only a lost server or session is worth a new session.
                Err(error @ (fs::Error::Transport(_) | fs::Error::Fs(fs::FsError::BadSession))) => {
                    *session = None;
                    last = error;
                }
                Err(error) => return Err(error),
            }
        }
        Err(last)
    }
}

/// `[key length: u16][key][value length: u16][value]`, one after another.
fn encode(map: &Map) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (key, value) in map {
        for part in [key.as_bytes(), value.as_slice()] {
            bytes.extend_from_slice(&(part.len() as u16).to_le_bytes());
            bytes.extend_from_slice(part);
        }
    }
    bytes
}

/// The map [`encode`] wrote, or `None` if the bytes are not one.
fn decode(mut bytes: &[u8]) -> Option<Map> {
    let mut map = Map::new();
    while !bytes.is_empty() {
        let key = String::from_utf8(take(&mut bytes)?).ok()?;
        map.insert(key, take(&mut bytes)?);
    }
    Some(map)
}

/// One length-prefixed part from the front of `bytes`.
fn take(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let (len, rest) = bytes.split_first_chunk::<2>()?;
    let len = u16::from_le_bytes(*len) as usize;
    let part = rest.get(..len)?.to_vec();
    *bytes = &rest[len..];
    Some(part)
}
