//! The TCP checksum of frames being sent, filled in by the NIC's transmit path rather than
//! by smoltcp, whose 16-bit-at-a-time sum costs about 1,200 instructions for a full
//! segment: here a chain of add-with-carry takes 64 bytes in 11 instructions, about 300
//! for a full segment. smoltcp is told the checksum is
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
    let rounds = bytes.len() / ROUND;
    let mut total = rounds_sum(bytes, rounds);
    let mut words = bytes[rounds * ROUND..].chunks_exact(8);
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

/// Bytes a round of [`rounds_sum`] adds.
const ROUND: usize = 64;

/// The one's-complement sum of the first `rounds` * [`ROUND`] bytes of `bytes`, as
/// little-endian 64-bit words: one add-with-carry per word, the carry running on through
/// the loop (`lea` and `dec` leave it alone) and added back at the end.
fn rounds_sum(bytes: &[u8], rounds: usize) -> u64 {
    assert!(rounds * ROUND <= bytes.len());
    if rounds == 0 {
        return 0;
    }
    let mut total: u64 = 0;
    // SAFETY: the loop reads `rounds` * 64 bytes from the start of `bytes`, which holds
    // them (asserted above); it writes only the registers it names and the flags, and
    // touches no stack.
    unsafe {
        core::arch::asm!(
            "clc",
            "2:",
            "adc {total}, qword ptr [{at}]",
            "adc {total}, qword ptr [{at} + 8]",
            "adc {total}, qword ptr [{at} + 16]",
            "adc {total}, qword ptr [{at} + 24]",
            "adc {total}, qword ptr [{at} + 32]",
            "adc {total}, qword ptr [{at} + 40]",
            "adc {total}, qword ptr [{at} + 48]",
            "adc {total}, qword ptr [{at} + 56]",
            "lea {at}, [{at} + 64]",
            "dec {left}",
            "jnz 2b",
            "adc {total}, 0",
            total = inout(reg) total,
            at = inout(reg) bytes.as_ptr() => _,
            left = inout(reg) rounds => _,
            options(pure, readonly, nostack),
        );
    }
    total
}

/// A sum folded to 16 bits.
fn fold(sum: u64) -> u16 {
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff_ffff) + (sum >> 32);
    let sum = (sum & 0xffff) + (sum >> 16);
    let sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}
