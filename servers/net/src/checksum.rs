//! The TCP checksum of frames being sent, filled in by the NIC's transmit path rather than
//! by smoltcp, whose 16-bit-at-a-time sum costs about 1,200 instructions for a full
//! segment: here it adds 64-bit words, a quarter of that. smoltcp is told the checksum is
//! the device's to fill (`ChecksumCapabilities`) and leaves the field zero; received
//! segments it still checks itself.
//!
//! The one's-complement sum does not depend on byte order (RFC 1071): words are added as
//! they lie in memory (little-endian) and the folded sum, byte-swapped, is the big-endian
//! one. So the field's bytes are the complement of the folded sum, stored little-endian.

const ETHERNET: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const PROTOCOL_TCP: u8 = 6;
/// Where the checksum lies in a TCP header.
const TCP_CHECKSUM: usize = 16;

/// Fill in the TCP checksum of `frame`, if it is an IPv4 frame carrying a whole TCP
/// segment; leave any other frame alone.
pub fn fill_tcp(frame: &mut [u8]) {
    if frame.get(12..14) != Some(&ETHERTYPE_IPV4[..]) {
        return;
    }
    let Some(ip) = frame.get_mut(ETHERNET..) else {
        return;
    };
    if ip.len() < 20 || ip[9] != PROTOCOL_TCP {
        return;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if header < 20 || total > ip.len() || total < header + 20 {
        return;
    }
    let length = (total - header) as u16;
    let [high, low] = length.to_be_bytes();
    // The pseudo-header: source and destination address, zero, protocol, TCP length.
    let pseudo = [0, PROTOCOL_TCP, high, low];
    let sum = add(sum(&ip[12..20]), sum(&pseudo));
    let segment = &mut ip[header..total];
    segment[TCP_CHECKSUM..TCP_CHECKSUM + 2].fill(0);
    let sum = add(sum, self::sum(segment));
    segment[TCP_CHECKSUM..TCP_CHECKSUM + 2].copy_from_slice(&(!fold(sum)).to_le_bytes());
}

/// One's-complement addition of two partial sums.
fn add(a: u64, b: u64) -> u64 {
    let (sum, carry) = a.overflowing_add(b);
    sum + u64::from(carry)
}

/// The one's-complement sum of `bytes` as little-endian words (an odd last byte padded
/// with zero), not yet folded.
fn sum(bytes: &[u8]) -> u64 {
    // Four words a round into 128 bits: an add and an add-with-carry each.
    let mut wide: u128 = 0;
    let mut rounds = bytes.chunks_exact(32);
    for round in &mut rounds {
        for word in round.chunks_exact(8) {
            wide += u128::from(u64::from_le_bytes(word.try_into().unwrap_or_default()));
        }
    }
    let mut total = add(wide as u64, (wide >> 64) as u64);
    let mut words = rounds.remainder().chunks_exact(8);
    for word in &mut words {
        total = add(
            total,
            u64::from_le_bytes(word.try_into().unwrap_or_default()),
        );
    }
    let rest = words.remainder();
    let mut last = [0; 8];
    last[..rest.len()].copy_from_slice(rest);
    add(total, u64::from_le_bytes(last))
}

/// A sum folded to 16 bits.
fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
