//! Decode errors. Every malformed input ends in one of these, never in a panic.

/// Why a byte sequence is not a valid OpenFlow 1.3 message (or unit of one).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The unit ends before a field it must contain.
    #[error("truncated {what}: need {need} bytes, have {have}")]
    Truncated {
        what: &'static str,
        need: usize,
        have: usize,
    },
    /// A length field is below the unit's minimum or otherwise impossible.
    #[error("bad length {len} in {what} (minimum {min}, {have} bytes available)")]
    BadLength {
        what: &'static str,
        len: usize,
        min: usize,
        have: usize,
    },
    /// The message header carries a version other than OpenFlow 1.3 (0x04).
    #[error("unsupported OpenFlow version {version:#04x} (message type {msg_type}); only 0x04 (OpenFlow 1.3) is spoken")]
    BadVersion { version: u8, msg_type: u8 },
    /// The message header announces more bytes than the framer accepts.
    #[error("message length {len} exceeds the limit of {max} bytes")]
    TooLong { len: usize, max: usize },
    /// Bytes are left over after a unit that must be consumed exactly.
    #[error("{extra} unexpected trailing bytes in {what}")]
    Trailing { what: &'static str, extra: usize },
    /// A field holds a value the unit cannot carry.
    #[error("invalid {what}: {value}")]
    BadValue { what: &'static str, value: u64 },
}

impl Error {
    /// Names the enclosing unit in a truncation that a nested reader reported without context.
    pub(crate) fn within(self, what: &'static str) -> Self {
        match self {
            Error::Truncated { need, have, .. } => Error::Truncated { what, need, have },
            e => e,
        }
    }
}
