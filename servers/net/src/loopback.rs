//! Looking into Ethernet frames: those the stack sends to itself, SYNs, DHCP servers'
//! messages, and whether a frame sent may leave its socket more to send.
//!
//! Frames the stack sends to itself: smoltcp has no loopback interface, so a connection to
//! the guest's own address (the shell's tour fetching the status page) would go out on the
//! wire and never come back. Frames addressed to our own MAC come back in instead, and an
//! ARP request for our own address (sender and target the same) gets its answer here.

use alloc::vec::Vec;

const ETHERTYPE_ARP: [u8; 2] = [0x08, 0x06];
/// Ethernet header, then ARP for IPv4 over Ethernet: 28 bytes.
const ETHERNET: usize = 14;
const ARP_LEN: usize = 28;
const ARP_REQUEST: [u8; 2] = [0, 1];
const ARP_REPLY: [u8; 2] = [0, 2];

/// The frame the stack should receive instead of `frame` going out, if `frame` is for
/// itself (`mac` is its address).
pub fn for_self(frame: &[u8], mac: [u8; 6]) -> Option<Vec<u8>> {
    if frame.get(..6)? == mac {
        return Some(frame.to_vec());
    }
    if frame.get(12..14)? != ETHERTYPE_ARP {
        return None;
    }
    let arp = frame.get(ETHERNET..ETHERNET + ARP_LEN)?;
    let (op, sender_mac, sender_ip, target_ip) =
        (&arp[6..8], &arp[8..14], &arp[14..18], &arp[24..28]);
    if op != ARP_REQUEST || sender_mac != mac || sender_ip != target_ip {
        return None;
    }
    // "We are at our own address": the request, turned into its reply, to ourselves.
    let mut reply = frame[..ETHERNET + ARP_LEN].to_vec();
    reply[..6].copy_from_slice(&mac);
    let arp = &mut reply[ETHERNET..];
    arp[6..8].copy_from_slice(&ARP_REPLY);
    arp[18..24].copy_from_slice(&mac);
    Some(reply)
}

/// The destination port of `frame`, if it is IPv4 carrying a TCP segment with SYN set and
/// ACK clear.
pub fn tcp_syn_port(frame: &[u8]) -> Option<u16> {
    const IPV4: [u8; 2] = [0x08, 0x00];
    const TCP: u8 = 6;
    let ip = frame.get(ETHERNET..)?;
    if frame.get(12..14) != Some(&IPV4[..]) || ip.get(9) != Some(&TCP) {
        return None;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let tcp = ip.get(header..header + 14)?;
    // Flags are byte 13 of the TCP header: SYN 0x02, ACK 0x10.
    (tcp[13] & 0x12 == 0x02).then(|| u16::from_be_bytes([tcp[2], tcp[3]]))
}

/// Whether `frame` is IPv4 carrying UDP from port 67 to port 68: a DHCP server's message
/// to a client.
pub fn is_dhcp_reply(frame: &[u8]) -> bool {
    const IPV4: [u8; 2] = [0x08, 0x00];
    const UDP: u8 = 17;
    const PORTS: [u8; 4] = [0, 67, 0, 68];
    let Some(ip) = frame.get(ETHERNET..) else {
        return false;
    };
    if frame.get(12..14) != Some(&IPV4[..]) || ip.get(9) != Some(&UDP) {
        return false;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    ip.get(header..header + 4) == Some(&PORTS[..])
}

/// Whether `frame`, just built by a socket, may leave that socket more to send now: any
/// frame but a TCP segment that empties its send buffer (smoltcp marks the segment that
/// sends the last byte queued with PSH or FIN) or carries no data (a SYN-ACK, an ACK, a
/// reset: a socket with data to send sends it with those). A segment cut short by the
/// window says so too, wrongly but harmlessly: the next pass finds the window still shut.
pub fn may_send_more(frame: &[u8]) -> bool {
    const IPV4: [u8; 2] = [0x08, 0x00];
    const TCP: u8 = 6;
    const FIN: u8 = 0x01;
    const PSH: u8 = 0x08;
    let Some(ip) = frame.get(ETHERNET..) else {
        return true;
    };
    if frame.get(12..14) != Some(&IPV4[..]) || ip.get(9) != Some(&TCP) || ip.len() < 20 {
        return true;
    }
    let header = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let (Some(&offset), Some(&flags)) = (ip.get(header + 12), ip.get(header + 13)) else {
        return true;
    };
    let data = total.saturating_sub(header + usize::from(offset >> 4) * 4);
    data > 0 && flags & (FIN | PSH) == 0
}
