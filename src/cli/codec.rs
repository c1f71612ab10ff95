//! `servswitch decode` and `servswitch encode`: a stream of binary OpenFlow 1.3 messages to
//! text or JSON, and JSON back to the same bytes.

use std::io::Write;

use anyhow::{bail, Context, Result};
use bytes::BytesMut;
use ofp13::{decode_frame, Message, MAX_MESSAGE_LEN};

/// Iterates over the messages of `input`, yielding each with its byte offset; a malformed
/// or incomplete message ends the iteration with an error naming its offset.
fn messages(input: &[u8]) -> impl Iterator<Item = Result<Message>> + '_ {
    let mut buf = BytesMut::from(input);
    let mut offset = 0usize;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || buf.is_empty() {
            return None;
        }
        let before = buf.len();
        let item = match decode_frame(&mut buf, MAX_MESSAGE_LEN) {
            Ok(Some(m)) => Ok(m),
            Ok(None) => {
                let need =
                    ofp13::Header::peek(&buf).map_or(ofp13::HEADER_LEN, |h| h.length as usize);
                Err(anyhow::anyhow!(
                    "truncated message at offset {offset}: need {need} bytes, have {}",
                    buf.len()
                ))
            }
            Err(e) => Err(anyhow::anyhow!("malformed message at offset {offset}: {e}")),
        };
        if item.is_err() {
            done = true;
        }
        offset += before - buf.len();
        Some(item)
    })
}

/// Decodes every message of `input`.
pub fn decode_all(input: &[u8]) -> Result<Vec<Message>> {
    messages(input).collect()
}

/// Writes one text line (or block, for flow-stats replies) per message as it is decoded.
pub fn decode_text(input: &[u8], out: &mut impl Write) -> Result<()> {
    for m in messages(input) {
        writeln!(out, "{}", ofp13::text::message(&m?))?;
    }
    Ok(())
}

/// Encodes JSON messages: an array, a single message, or whitespace-separated messages.
pub fn encode_json(text: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut count = 0usize;
    for value in serde_json::Deserializer::from_str(text).into_iter::<serde_json::Value>() {
        let value = value.context("invalid JSON")?;
        let list = match value {
            serde_json::Value::Array(items) => items,
            v => vec![v],
        };
        for item in list {
            let m: Message = serde_json::from_value(item)
                .with_context(|| format!("message {count} is not a valid OpenFlow 1.3 message"))?;
            let start = out.len();
            m.emit(&mut out);
            if out.len() - start > MAX_MESSAGE_LEN {
                bail!(
                    "message {count} encodes to {} bytes, over OpenFlow's 65535-byte limit",
                    out.len() - start
                );
            }
            count += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ofp13::Body;

    #[test]
    fn json_round_trip_and_errors() {
        let mut bytes = Message::new(1, Body::BarrierRequest).to_bytes();
        bytes.extend(Message::new(2, Body::FeaturesRequest).to_bytes());
        let msgs = decode_all(&bytes).unwrap();
        let json = serde_json::to_string(&msgs).unwrap();
        assert_eq!(encode_json(&json).unwrap(), bytes);
        let e = decode_all(&bytes[..12]).unwrap_err().to_string();
        assert_eq!(e, "truncated message at offset 8: need 8 bytes, have 4");
        assert!(encode_json("{\"xid\": 1, \"type\": \"nope\"}").is_err());
    }
}
