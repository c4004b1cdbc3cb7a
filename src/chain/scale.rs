//! SCALE, the encoding of every Substrate storage value, for exactly the shapes warden
//! reads: fixed-width little-endian integers, compact integers, `bool`, `Option`, `Vec`,
//! `BTreeMap`, tuples and byte arrays. Structs are in `types.rs`.
//!
//! Decoding is as strict as `parity-scale-codec` 3.x (what the runtime itself uses): a
//! compact integer must be in its shortest form, a `bool` is 0 or 1, an `Option` tag is 0
//! or 1, and [`decode_all`] refuses trailing bytes. An error names what was being decoded
//! (`StakingLedger.unlocking[1].era`) and the byte offset where that item starts.
//!
//! Encoding exists for tests and fixtures, and writes what `parity-scale-codec` writes.

use std::collections::BTreeMap;
use std::fmt;

/// A value that could not be decoded: what, where, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// Path of the item, innermost segment last once built: see [`DecodeError::path`].
    segments: Vec<String>,
    /// Byte offset in the whole input where the failing item starts.
    pub offset: usize,
    pub reason: DecodeErrorReason,
}

/// Why decoding failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeErrorReason {
    /// The input ended: `needed` bytes were wanted, `available` were left.
    UnexpectedEnd { needed: usize, available: usize },
    /// A compact integer in a longer form than its value needs (parity-scale-codec
    /// refuses these: "out of range").
    NonCanonicalCompact,
    /// A compact integer too large for the type being decoded.
    CompactTooLarge { max_bits: u32 },
    /// A `bool` byte other than 0 or 1.
    InvalidBool(u8),
    /// An `Option` tag other than 0 (None) or 1 (Some).
    InvalidOptionTag(u8),
    /// Bytes left over after the whole value was decoded.
    TrailingBytes { count: usize },
    /// A length that fits none of the layouts the type accepts.
    LengthMismatch { detail: String },
}

impl DecodeError {
    pub fn new(offset: usize, reason: DecodeErrorReason) -> Self {
        DecodeError {
            segments: Vec::new(),
            offset,
            reason,
        }
    }

    /// Adds an enclosing segment: a field name (`"total"`) or an index (`"[3]"`).
    /// Called on the way out, so segments arrive innermost first.
    pub fn inside(mut self, segment: impl Into<String>) -> Self {
        self.segments.push(segment.into());
        self
    }

    /// The dotted path of the failing item, outermost first: `StakingLedger.unlocking[1].era`.
    pub fn path(&self) -> String {
        let mut path = String::new();
        for segment in self.segments.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        path
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path();
        let path = if path.is_empty() { "value" } else { &path };
        write!(f, "cannot decode {path} at byte {}: ", self.offset)?;
        match &self.reason {
            DecodeErrorReason::UnexpectedEnd { needed, available } => {
                write!(f, "input ends: {needed} bytes needed, {available} left")
            }
            DecodeErrorReason::NonCanonicalCompact => {
                write!(f, "compact integer not in its shortest form")
            }
            DecodeErrorReason::CompactTooLarge { max_bits } => {
                write!(f, "compact integer does not fit {max_bits} bits")
            }
            DecodeErrorReason::InvalidBool(byte) => write!(f, "bool byte is {byte}, not 0 or 1"),
            DecodeErrorReason::InvalidOptionTag(byte) => {
                write!(f, "option tag is {byte}, not 0 or 1")
            }
            DecodeErrorReason::TrailingBytes { count } => {
                write!(f, "{count} bytes left over after the value")
            }
            DecodeErrorReason::LengthMismatch { detail } => write!(f, "{detail}"),
        }
    }
}

impl std::error::Error for DecodeError {}

/// A cursor over the bytes being decoded; it knows its offset for error messages.
pub struct Input<'a> {
    bytes: &'a [u8],
    position: usize,
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes, position: 0 }
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> usize {
        self.position
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.position
    }

    pub fn read_bytes(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < count {
            return Err(DecodeError::new(
                self.position,
                DecodeErrorReason::UnexpectedEnd {
                    needed: count,
                    available: self.remaining(),
                },
            ));
        }
        let slice = &self.bytes[self.position..self.position + count];
        self.position += count;
        Ok(slice)
    }

    pub fn read_array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0u8; N];
        array.copy_from_slice(self.read_bytes(N)?);
        Ok(array)
    }

    /// The next byte, not consumed.
    pub fn peek_byte(&self) -> Result<u8, DecodeError> {
        self.bytes.get(self.position).copied().ok_or_else(|| {
            DecodeError::new(
                self.position,
                DecodeErrorReason::UnexpectedEnd {
                    needed: 1,
                    available: 0,
                },
            )
        })
    }

    pub fn read_byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.read_bytes(1)?[0])
    }
}

/// A type with a SCALE decoding.
pub trait Decode: Sized {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError>;
}

/// A type with a SCALE encoding.
pub trait Encode {
    fn encode_to(&self, out: &mut Vec<u8>);

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_to(&mut out);
        out
    }
}

/// Decodes a whole storage value: `what` names it in errors (e.g. `"Staking.Ledger"`),
/// and bytes left over are an error, as they are for the runtime's `decode_all`.
pub fn decode_all<T: Decode>(bytes: &[u8], what: &str) -> Result<T, DecodeError> {
    let mut input = Input::new(bytes);
    let value = T::decode(&mut input).map_err(|e| e.inside(what))?;
    if input.remaining() != 0 {
        return Err(DecodeError::new(
            input.position(),
            DecodeErrorReason::TrailingBytes {
                count: input.remaining(),
            },
        )
        .inside(what));
    }
    Ok(value)
}

/// Decodes one named part of a larger value, adding `name` to the error path.
pub fn decode_field<T: Decode>(input: &mut Input<'_>, name: &str) -> Result<T, DecodeError> {
    T::decode(input).map_err(|e| e.inside(name))
}

macro_rules! fixed_width_int {
    ($($ty:ty),*) => {$(
        impl Decode for $ty {
            fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
                Ok(<$ty>::from_le_bytes(input.read_array()?))
            }
        }
        impl Encode for $ty {
            fn encode_to(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
fixed_width_int!(u8, u16, u32, u64, u128);

impl Decode for bool {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let offset = input.position();
        match input.read_byte()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(DecodeError::new(
                offset,
                DecodeErrorReason::InvalidBool(other),
            )),
        }
    }
}

impl Encode for bool {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

/// A `#[codec(compact)]` integer: 1, 2 or 4 bytes with the mode in the low two bits, or
/// a length byte followed by 4 to 16 little-endian bytes ("big-integer mode").
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Compact<T>(pub T);

/// Reads a compact integer of at most `max_bits` bits with parity-scale-codec's checks
/// (`parity-scale-codec` 3.x `src/compact.rs`, `impl Decode for Compact<u128>`): each mode
/// must be the shortest one for its value, and big-integer mode must not carry a zero
/// top byte (nor, with 4 bytes, a value below 2^30).
fn decode_compact(input: &mut Input<'_>, max_bits: u32) -> Result<u128, DecodeError> {
    let offset = input.position();
    let prefix = input.peek_byte()?;
    let byte_count = match prefix & 0b11 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 1 + usize::from(prefix >> 2) + 4,
    };
    if byte_count > 17 {
        // More than 16 digit bytes: only an integer wider than u128 could hold it.
        return Err(DecodeError::new(
            offset,
            DecodeErrorReason::CompactTooLarge { max_bits },
        ));
    }
    // Read the whole integer at once so that a short input is reported at its start.
    let bytes = input.read_bytes(byte_count)?;
    let mut buffer = [0u8; 16];
    let (value, shortest) = match prefix & 0b11 {
        0 => (u128::from(prefix >> 2), true),
        1 => {
            let value = u128::from(u16::from_le_bytes([bytes[0], bytes[1]]) >> 2);
            (value, value > 0b0011_1111)
        }
        2 => {
            let value =
                u128::from(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) >> 2);
            (value, value > 0b0011_1111_1111_1111)
        }
        _ => {
            let digits = &bytes[1..];
            buffer[..digits.len()].copy_from_slice(digits);
            let value = u128::from_le_bytes(buffer);
            let shortest = if digits.len() == 4 {
                value > u128::from(u32::MAX >> 2)
            } else {
                digits[digits.len() - 1] != 0
            };
            (value, shortest)
        }
    };
    if !shortest {
        return Err(DecodeError::new(
            offset,
            DecodeErrorReason::NonCanonicalCompact,
        ));
    }
    if max_bits < 128 && value >> max_bits != 0 {
        return Err(DecodeError::new(
            offset,
            DecodeErrorReason::CompactTooLarge { max_bits },
        ));
    }
    Ok(value)
}

/// Writes `value` in its shortest compact form.
pub fn encode_compact(value: u128, out: &mut Vec<u8>) {
    if value < 1 << 6 {
        out.push((value as u8) << 2);
    } else if value < 1 << 14 {
        out.extend_from_slice(&(((value as u16) << 2) | 0b01).to_le_bytes());
    } else if value < 1 << 30 {
        out.extend_from_slice(&(((value as u32) << 2) | 0b10).to_le_bytes());
    } else {
        let bytes = value.to_le_bytes();
        let byte_count = (16 - value.leading_zeros() as usize / 8).max(4);
        out.push((((byte_count - 4) as u8) << 2) | 0b11);
        out.extend_from_slice(&bytes[..byte_count]);
    }
}

macro_rules! compact_int {
    ($($ty:ty => $bits:expr),*) => {$(
        impl Decode for Compact<$ty> {
            fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
                // The range check in decode_compact makes the cast lossless.
                Ok(Compact(decode_compact(input, $bits)? as $ty))
            }
        }
        impl Encode for Compact<$ty> {
            fn encode_to(&self, out: &mut Vec<u8>) {
                encode_compact(u128::from(self.0), out);
            }
        }
    )*};
}
compact_int!(u32 => 32, u64 => 64, u128 => 128);

/// Reads a `Compact<u32>` length prefix (what `Vec`, `BTreeMap` and `Vec<u8>` start with).
pub fn decode_length(input: &mut Input<'_>) -> Result<usize, DecodeError> {
    let length = Compact::<u32>::decode(input).map_err(|e| e.inside("length"))?;
    Ok(length.0 as usize)
}

fn encode_length(length: usize, out: &mut Vec<u8>) {
    encode_compact(length as u128, out);
}

impl<T: Decode> Decode for Option<T> {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let offset = input.position();
        match input.read_byte()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(input)?)),
            other => Err(DecodeError::new(
                offset,
                DecodeErrorReason::InvalidOptionTag(other),
            )),
        }
    }
}

impl<T: Encode> Encode for Option<T> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(value) => {
                out.push(1);
                value.encode_to(out);
            }
        }
    }
}

impl<T: Decode> Decode for Vec<T> {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let length = decode_length(input)?;
        // Never trust a length for an allocation: each element takes at least a byte.
        let mut items = Vec::with_capacity(length.min(input.remaining()));
        for index in 0..length {
            items.push(T::decode(input).map_err(|e| e.inside(format!("[{index}]")))?);
        }
        Ok(items)
    }
}

impl<T: Encode> Encode for Vec<T> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for item in self {
            item.encode_to(out);
        }
    }
}

/// Entries in order; a key seen twice keeps its last value, as parity-scale-codec's
/// `BTreeMap` decoding (a `collect` into the map) does.
impl<K: Decode + Ord, V: Decode> Decode for BTreeMap<K, V> {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let length = decode_length(input)?;
        let mut map = BTreeMap::new();
        for index in 0..length {
            let (key, value) =
                <(K, V)>::decode(input).map_err(|e| e.inside(format!("[{index}]")))?;
            map.insert(key, value);
        }
        Ok(map)
    }
}

impl<K: Encode, V: Encode> Encode for BTreeMap<K, V> {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        for (key, value) in self {
            key.encode_to(out);
            value.encode_to(out);
        }
    }
}

impl<A: Decode, B: Decode> Decode for (A, B) {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        Ok((decode_field(input, "0")?, decode_field(input, "1")?))
    }
}

impl<A: Encode, B: Encode> Encode for (A, B) {
    fn encode_to(&self, out: &mut Vec<u8>) {
        self.0.encode_to(out);
        self.1.encode_to(out);
    }
}

impl<const N: usize> Decode for [u8; N] {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        input.read_array()
    }
}

impl<const N: usize> Encode for [u8; N] {
    fn encode_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self);
    }
}

/// A `Vec<u8>` as SCALE encodes it: compact length, then the bytes (no per-byte work).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl Decode for Bytes {
    fn decode(input: &mut Input<'_>) -> Result<Self, DecodeError> {
        let length = decode_length(input)?;
        Ok(Bytes(input.read_bytes(length)?.to_vec()))
    }
}

impl Encode for Bytes {
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_length(self.0.len(), out);
        out.extend_from_slice(&self.0);
    }
}

impl Encode for [u8] {
    /// A byte slice encodes as `Vec<u8>`, as `&[u8]` does in parity-scale-codec.
    fn encode_to(&self, out: &mut Vec<u8>) {
        encode_length(self.len(), out);
        out.extend_from_slice(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn compact_modes_round_trip_at_their_boundaries() {
        let table: &[(u128, &str)] = &[
            (0, "00"),
            (63, "fc"),
            (64, "0101"),
            (16383, "fdff"),
            (16384, "02000100"),
            ((1 << 30) - 1, "feffffff"),
            (1 << 30, "0300000040"),
            (u32::MAX as u128, "03ffffffff"),
            (1 << 32, "070000000001"),
            (u64::MAX as u128, "13ffffffffffffffff"),
            (u128::MAX, "33ffffffffffffffffffffffffffffffff"),
        ];
        for (value, encoded) in table {
            let mut out = Vec::new();
            encode_compact(*value, &mut out);
            assert_eq!(hex::encode(&out), *encoded, "encoding {value}");
            let decoded: Compact<u128> = decode_all(&out, "n").unwrap();
            assert_eq!(decoded.0, *value);
        }
    }

    #[test]
    fn compact_refuses_longer_forms_than_needed() {
        // (bytes, what) — each is a valid value in a too-long mode.
        let table = [
            ("0100", "0 in two-byte mode"),
            ("fd00", "63 in two-byte mode"),
            ("02000000", "0 in four-byte mode"),
            ("feff0000", "16383 in four-byte mode"),
            ("03ffffff3f", "2^30-1 in big-integer mode"),
            ("070000000000", "2^32 written with a zero top byte"),
        ];
        for (bytes, what) in table {
            let error = decode_all::<Compact<u128>>(&hex(bytes), "n").unwrap_err();
            assert_eq!(
                error.reason,
                DecodeErrorReason::NonCanonicalCompact,
                "{what}"
            );
            assert_eq!(error.offset, 0);
        }
    }

    #[test]
    fn compact_refuses_values_too_wide_for_the_type() {
        let error = decode_all::<Compact<u32>>(&hex("070000000001"), "era").unwrap_err();
        assert_eq!(
            error.reason,
            DecodeErrorReason::CompactTooLarge { max_bits: 32 }
        );
        let error = decode_all::<Compact<u64>>(&hex("17000000000000000001"), "moment").unwrap_err();
        assert_eq!(
            error.reason,
            DecodeErrorReason::CompactTooLarge { max_bits: 64 }
        );
        // 17 bytes of big-integer mode fits no integer type.
        let mut seventeen = vec![0b0011_0111];
        seventeen.extend([0xff; 17]);
        assert!(decode_all::<Compact<u128>>(&seventeen, "n").is_err());
    }

    #[test]
    fn errors_name_the_item_and_the_byte() {
        // Vec<(u32, bool)> with a bad bool in the second element.
        let bytes = hex(concat!("08", "0100000001", "0200000007")); // two (u32, bool) elements
        let error = decode_all::<Vec<(u32, bool)>>(&bytes, "Pairs").unwrap_err();
        assert_eq!(error.path(), "Pairs[1].1");
        assert_eq!(error.offset, 10);
        assert_eq!(error.reason, DecodeErrorReason::InvalidBool(7));
        assert_eq!(
            error.to_string(),
            "cannot decode Pairs[1].1 at byte 10: bool byte is 7, not 0 or 1"
        );
    }

    #[test]
    fn truncated_and_trailing_input_are_errors() {
        let error = decode_all::<u32>(&hex("010203"), "CurrentEra").unwrap_err();
        assert_eq!(
            error.reason,
            DecodeErrorReason::UnexpectedEnd {
                needed: 4,
                available: 3
            }
        );
        let error = decode_all::<u32>(&hex("0100000000"), "CurrentEra").unwrap_err();
        assert_eq!(error.reason, DecodeErrorReason::TrailingBytes { count: 1 });
        assert_eq!(error.offset, 4);
        assert_eq!(
            error.to_string(),
            "cannot decode CurrentEra at byte 4: 1 bytes left over after the value"
        );
    }

    #[test]
    fn option_tags_other_than_0_and_1_are_errors() {
        assert_eq!(decode_all::<Option<u64>>(&hex("00"), "o").unwrap(), None);
        let error = decode_all::<Option<u64>>(&hex("020000000000000000"), "o").unwrap_err();
        assert_eq!(error.reason, DecodeErrorReason::InvalidOptionTag(2));
    }

    #[test]
    fn a_huge_length_prefix_fails_without_allocating_it() {
        // Length 2^30 - 1 with nothing behind it.
        let error = decode_all::<Vec<u32>>(&hex("feffffff"), "v").unwrap_err();
        assert_eq!(error.path(), "v[0]");
        assert!(matches!(
            error.reason,
            DecodeErrorReason::UnexpectedEnd { .. }
        ));
    }

    #[test]
    fn btreemap_keeps_the_last_value_of_a_repeated_key() {
        let bytes = hex(concat!("08", "0101000000", "0102000000")); // two entries, same key
        let map = decode_all::<BTreeMap<u8, u32>>(&bytes, "m").unwrap();
        assert_eq!(map.into_iter().collect::<Vec<_>>(), vec![(1, 2)]);
    }
}
