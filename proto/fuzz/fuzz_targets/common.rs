//! The property both targets check on every message the codec accepts.

use ofp13::Message;

/// Emit/parse stability: re-emitting a parsed message and parsing the result gives the same
/// message, and emitting that again gives the same bytes.
///
/// Byte-for-byte equality with the fuzzer's input is not expected: parsing ignores the content
/// of padding, which emitting writes as zeros.
pub fn check_stable(first: &Message) {
    let bytes = first.to_bytes();
    let second = match Message::parse_slice(&bytes) {
        Ok(m) => m,
        Err(e) => panic!(
            "re-parse of emitted bytes failed: {e}\nfirst: {first:?}\nemitted: {}",
            ofp13::Hex(&bytes)
        ),
    };
    assert_eq!(
        &second,
        first,
        "emit/parse is not stable; emitted: {}",
        ofp13::Hex(&bytes)
    );
    assert_eq!(
        second.to_bytes(),
        bytes,
        "second emit differs from the first"
    );
}
