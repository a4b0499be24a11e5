//! Standard base64 (RFC 4648 section 4), as apk writes the `Q1` checksums: encoded, and decoded
//! strictly, so that one byte string has one encoding.

/// The standard base64 alphabet (RFC 4648 section 4), as apk uses it.
const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, strictly: whole groups of four, `=` only at the end, unused
/// bits zero, so that one byte string has one encoding.
pub(super) fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let groups: usize = text.len() / 4;
    let mut bytes: Vec<u8> = Vec::with_capacity(groups.saturating_mul(3));
    for (index, group) in text.chunks_exact(4).enumerate() {
        let padding: usize = group.iter().rev().take_while(|&&symbol| symbol == b'=').count();
        if padding > 2 || (padding > 0 && index + 1 != groups) {
            return None;
        }
        let mut word: u32 = 0;
        for (position, &symbol) in group.iter().enumerate() {
            let value: u32 = if position + padding < 4 {
                base64_value(symbol)?
            } else {
                0
            };
            word = (word << 6) | value;
        }
        let [_, first, second, third] = word.to_be_bytes();
        let decoded: [u8; 3] = [first, second, third];
        let (kept, unused) = decoded.split_at_checked(3 - padding)?;
        if unused.iter().any(|&byte| byte != 0) {
            return None;
        }
        bytes.extend_from_slice(kept);
    }
    Some(bytes)
}

fn base64_value(symbol: u8) -> Option<u32> {
    let value: u8 = match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(value))
}

pub(super) fn encode_base64(bytes: &[u8]) -> String {
    let mut text: String = String::with_capacity(bytes.len().div_ceil(3).saturating_mul(4));
    for chunk in bytes.chunks(3) {
        let [first, second, third] =
            [chunk.first(), chunk.get(1), chunk.get(2)].map(|byte| byte.copied().unwrap_or(0));
        let word: u32 = (u32::from(first) << 16) | (u32::from(second) << 8) | u32::from(third);
        for position in 0..4_usize {
            // A chunk of n bytes fills n + 1 symbols; padding completes the four.
            if position <= chunk.len() {
                let shift: usize = 18 - 6 * position;
                let index: usize = usize::try_from((word >> shift) & 0x3f).unwrap_or(0);
                text.push(BASE64.get(index).map_or('=', |&symbol| char::from(symbol)));
            } else {
                text.push('=');
            }
        }
    }
    text
}
