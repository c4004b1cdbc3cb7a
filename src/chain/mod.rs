//! Creditcoin 3 / Substrate on-chain state, read exactly.
//!
//! Invariant: pure, no sockets, no files, no clock.

pub mod hashing;
pub mod keys;
pub mod scale;
pub mod session_keys;
pub mod ss58;
pub mod types;

#[cfg(test)]
mod vectors;
