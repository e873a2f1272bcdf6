//! Names: which FAT can hold, their 8.3 short forms and long-name (VFAT) slots.

use alloc::string::String;
use alloc::vec::Vec;

use crate::Error;

/// The most UTF-16 units a long name may have.
const MAX_LONG: usize = 255;
/// UTF-16 units in one long-name slot.
pub const PER_SLOT: usize = 13;
/// Where a long-name slot keeps its 13 units.
const UNIT_OFFSETS: [usize; PER_SLOT] = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

/// Check one path component: not empty, `.` or `..`, no reserved character, no trailing
/// dot or space (which Windows would drop), at most 255 UTF-16 units.
pub fn check(name: &str) -> Result<(), Error> {
    let reserved = |c: char| c < ' ' || c == '\x7f' || "\"*/:<>?\\|".contains(c);
    let valid = !name.is_empty()
        && name != "."
        && name != ".."
        && !name.ends_with(['.', ' '])
        && !name.contains(reserved)
        && name.encode_utf16().count() <= MAX_LONG;
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName)
    }
}

/// Whether two names are the same to FAT, which ignores case.
pub fn same(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_uppercase)
        .eq(b.chars().flat_map(char::to_uppercase))
}

/// A character allowed in a short name as it is.
fn short_char(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || b"!#$%&'()-@^_`{}~".contains(&c)
}

/// The 11-byte short name if `name` is a valid 8.3 name as it stands (upper case);
/// such a name needs no long-name slots.
pub fn exact_short(name: &str) -> Option<[u8; 11]> {
    let (base, ext) = name.split_once('.').unwrap_or((name, ""));
    let fits = (1..=8).contains(&base.len()) && ext.len() <= 3 && !ext.contains('.');
    if !fits || !base.bytes().chain(ext.bytes()).all(short_char) {
        return None;
    }
    let mut short = [b' '; 11];
    short[..base.len()].copy_from_slice(base.as_bytes());
    short[8..8 + ext.len()].copy_from_slice(ext.as_bytes());
    Some(short)
}

/// The short alias `BASE~N.EXT` for a long name, with tail number `n` (1..=999_999).
pub fn alias(name: &str, n: u32) -> [u8; 11] {
    let squeeze = |part: &str| -> Vec<u8> {
        part.chars()
            .filter(|&c| c != ' ' && c != '.')
            .map(|c| {
                let upper = c.to_ascii_uppercase();
                if upper.is_ascii() && short_char(upper as u8) {
                    upper as u8
                } else {
                    b'_'
                }
            })
            .collect()
    };
    let trimmed = name.trim_start_matches('.');
    let (base, ext) = match trimmed.rfind('.') {
        Some(dot) => (&trimmed[..dot], &trimmed[dot + 1..]),
        None => (trimmed, ""),
    };
    let (base, ext) = (squeeze(base), squeeze(ext));
    let tail = alloc::format!("~{n}");
    let keep = base
        .len()
        .min(8 - tail.len())
        .max(if base.is_empty() { 0 } else { 1 });
    let mut short = [b' '; 11];
    short[..keep].copy_from_slice(&base[..keep]);
    short[keep..keep + tail.len()].copy_from_slice(tail.as_bytes());
    let ext = &ext[..ext.len().min(3)];
    short[8..8 + ext.len()].copy_from_slice(ext);
    short
}

/// The name a short entry shows, honouring the lower-case flags (byte 12) that Windows
/// and Linux set for all-lower-case 8.3 names.
pub fn from_short(short: &[u8; 11], case_flags: u8) -> String {
    let part = |bytes: &[u8], lower: bool| -> String {
        let text = bytes
            .iter()
            .rev()
            .skip_while(|&&b| b == b' ')
            .collect::<Vec<_>>();
        text.into_iter()
            .rev()
            .map(|&b| {
                let b = if b == 0x05 { 0xe5 } else { b };
                let c = char::from(b);
                if lower { c.to_ascii_lowercase() } else { c }
            })
            .collect()
    };
    let mut name = part(&short[..8], case_flags & 0x08 != 0);
    let ext = part(&short[8..], case_flags & 0x10 != 0);
    if !ext.is_empty() {
        name.push('.');
        name.push_str(&ext);
    }
    name
}

/// The checksum of a short name that its long-name slots carry.
pub fn checksum(short: &[u8; 11]) -> u8 {
    short
        .iter()
        .fold(0u8, |sum, &b| sum.rotate_right(1).wrapping_add(b))
}

/// The long-name slots for `name`, in the order they go on disk (the last part first).
pub fn long_slots(name: &str, short: &[u8; 11]) -> Vec<[u8; 32]> {
    let mut units: Vec<u16> = name.encode_utf16().collect();
    if !units.len().is_multiple_of(PER_SLOT) {
        units.push(0);
        units.resize(units.len().div_ceil(PER_SLOT) * PER_SLOT, 0xffff);
    }
    let count = units.len() / PER_SLOT;
    let sum = checksum(short);
    (0..count)
        .rev()
        .map(|index| {
            let mut slot = [0u8; 32];
            slot[0] = (index + 1) as u8 | if index + 1 == count { 0x40 } else { 0 };
            slot[11] = 0x0f;
            slot[13] = sum;
            for (unit, &at) in units[index * PER_SLOT..][..PER_SLOT]
                .iter()
                .zip(&UNIT_OFFSETS)
            {
                slot[at..at + 2].copy_from_slice(&unit.to_le_bytes());
            }
            slot
        })
        .collect()
}

/// The 13 units a long-name slot holds.
pub fn slot_units(slot: &[u8; 32]) -> [u16; PER_SLOT] {
    UNIT_OFFSETS.map(|at| u16::from_le_bytes([slot[at], slot[at + 1]]))
}

/// The name spelled by long-name units (up to the first 0), if it is valid UTF-16.
pub fn from_units(units: &[u16]) -> Option<String> {
    let end = units.iter().position(|&u| u == 0).unwrap_or(units.len());
    char::decode_utf16(units[..end].iter().copied())
        .collect::<Result<String, _>>()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_case_8_3_names_need_no_long_slots() {
        assert_eq!(exact_short("README.TXT"), Some(*b"README  TXT"));
        assert_eq!(exact_short("readme.txt"), None);
        assert_eq!(exact_short("TOOLONGNAME.TXT"), None);
    }

    #[test]
    fn aliases_look_like_the_ones_mtools_makes() {
        assert_eq!(&alias("a long name.txt", 1), b"ALONGN~1TXT");
        assert_eq!(&alias(".hidden", 2), b"HIDDEN~2   ");
        assert_eq!(&alias("über.tar.gz", 12), b"_BERT~12GZ ");
    }

    #[test]
    fn long_slots_spell_the_name_back() {
        let short = alias("a rather long file name.txt", 1);
        let slots = long_slots("a rather long file name.txt", &short);
        assert_eq!(slots.len(), 3);
        assert_eq!(slots[0][0], 0x43);
        let units: Vec<u16> = slots.iter().rev().flat_map(slot_units).collect();
        assert_eq!(
            from_units(&units).as_deref(),
            Some("a rather long file name.txt")
        );
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "",
            ".",
            "..",
            "a/b",
            "a:b",
            "trailing.",
            "tab\t",
            "x".repeat(256).as_str(),
        ] {
            assert_eq!(check(name), Err(Error::InvalidName), "{name:?}");
        }
        assert_eq!(check("ok name (2).txt"), Ok(()));
    }
}
