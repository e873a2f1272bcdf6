//! The fixed parts of the wire, packed and unpacked here only: the head of every ring
//! record, and the server's answer to a connect.

/// The first 8 bytes of a record: a request's `[call id][method id]`, a response's
/// `[call id][status]`, each a little-endian `u32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Head {
    pub id: u32,
    /// The method id of a request, the status of a response.
    pub code: u32,
}

impl Head {
    pub const LEN: usize = 8;

    /// Write the head into the first [`LEN`](Head::LEN) bytes of `record`, whose body
    /// follows; the bytes up to `LEN + body`.
    pub fn pack(self, record: &mut [u8], body: usize) -> &[u8] {
        record[..4].copy_from_slice(&self.id.to_le_bytes());
        record[4..Head::LEN].copy_from_slice(&self.code.to_le_bytes());
        &record[..Head::LEN + body]
    }

    /// A record's head and body; `None` when it is shorter than a head.
    pub fn unpack(record: &[u8]) -> Option<(Head, &[u8])> {
        let (head, body) = record.split_first_chunk::<{ Head::LEN }>()?;
        let [a, b, c, d, e, f, g, h] = *head;
        let head = Head {
            id: u32::from_le_bytes([a, b, c, d]),
            code: u32::from_le_bytes([e, f, g, h]),
        };
        Some((head, body))
    }
}

/// The server's answer to a connect, in the answer message's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnectAnswer {
    /// `[0, server's notification bit]`, with the channel, the badged capability to give
    /// capabilities on, and the lease.
    Accepted { server_bit: u32 },
    /// `[1, server's interface hash]`.
    Mismatch { found: u64 },
    /// `[2]`: the request was not usable.
    Malformed,
    /// `[3]`: the client, or all clients together, hold as many connections as they may.
    Limit,
}

impl ConnectAnswer {
    pub fn words(self) -> [u64; 4] {
        match self {
            ConnectAnswer::Accepted { server_bit } => [0, server_bit as u64, 0, 0],
            ConnectAnswer::Mismatch { found } => [1, found, 0, 0],
            ConnectAnswer::Malformed => [2, 0, 0, 0],
            ConnectAnswer::Limit => [3, 0, 0, 0],
        }
    }

    /// `None` for words no server sends (a notification bit past 63 included).
    pub fn from_words(words: [u64; 4]) -> Option<ConnectAnswer> {
        match words {
            [0, server_bit @ 0..64, ..] => Some(ConnectAnswer::Accepted {
                server_bit: server_bit as u32,
            }),
            [1, found, ..] => Some(ConnectAnswer::Mismatch { found }),
            [2, ..] => Some(ConnectAnswer::Malformed),
            [3, ..] => Some(ConnectAnswer::Limit),
            _ => None,
        }
    }
}
