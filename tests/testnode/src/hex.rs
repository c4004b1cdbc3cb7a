//! Hex encoding as Substrate's JSON-RPC speaks it: lowercase, `0x`-prefixed on output;
//! on input the prefix is optional, as `impl-serde`'s `from_hex` (behind `sp_core::Bytes`)
//! accepts both forms.

use std::fmt;

/// Why a hex string could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HexError {
    /// An odd number of digits: no whole number of bytes.
    OddLength,
    /// A character that is not a hex digit, with its index in the input (after any `0x`).
    InvalidChar { ch: char, index: usize },
}

impl fmt::Display for HexError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HexError::OddLength => write!(f, "invalid hex string: odd number of digits"),
            HexError::InvalidChar { ch, index } => {
                write!(f, "invalid hex character: {ch}, at {index}")
            }
        }
    }
}

/// Lowercase hex of `bytes`, without prefix.
pub fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    out
}

/// `0x` followed by the lowercase hex of `bytes`.
pub fn encode_prefixed(bytes: &[u8]) -> String {
    format!("0x{}", encode(bytes))
}

/// Decodes hex with or without a `0x` prefix; upper and lower case digits are accepted.
pub fn decode(text: &str) -> Result<Vec<u8>, HexError> {
    let digits = text.strip_prefix("0x").unwrap_or(text);
    if !digits.len().is_multiple_of(2) {
        return Err(HexError::OddLength);
    }
    let mut out = Vec::with_capacity(digits.len() / 2);
    let mut high = 0u8;
    for (index, ch) in digits.chars().enumerate() {
        let value = ch.to_digit(16).ok_or(HexError::InvalidChar { ch, index })? as u8;
        if index % 2 == 0 {
            high = value;
        } else {
            out.push(high << 4 | value);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_lowercase_with_and_without_prefix() {
        assert_eq!(encode(&[]), "");
        assert_eq!(encode(&[0x00, 0xab, 0xff, 0x10]), "00abff10");
        assert_eq!(encode_prefixed(b"gran"), "0x6772616e");
    }

    #[test]
    fn decodes_both_forms_and_both_cases() {
        assert_eq!(decode("0x6772616e").unwrap(), b"gran");
        assert_eq!(decode("6772616E").unwrap(), b"gran");
        assert_eq!(decode("0x").unwrap(), Vec::<u8>::new());
        assert_eq!(decode("").unwrap(), Vec::<u8>::new());
    }

    #[test]
    fn rejects_odd_length_and_bad_digits() {
        assert_eq!(decode("0xabc"), Err(HexError::OddLength));
        assert_eq!(
            decode("0xzz"),
            Err(HexError::InvalidChar { ch: 'z', index: 0 })
        );
        assert_eq!(
            decode("ab0g"),
            Err(HexError::InvalidChar { ch: 'g', index: 3 })
        );
    }

    #[test]
    fn round_trips() {
        let bytes: Vec<u8> = (0..=255).collect();
        assert_eq!(decode(&encode_prefixed(&bytes)).unwrap(), bytes);
    }
}
