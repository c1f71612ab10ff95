//! Feeds the input to the framer, `ofp13::decode_frame`, as a byte stream: whole, and again in
//! small chunks as a socket would deliver it. Both must decode the same sequence of messages
//! and errors, and every decoded message must survive emit → parse unchanged.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use ofp13::{decode_frame, Error, Message, MAX_MESSAGE_LEN};

mod common;

/// Decodes a stream delivered in chunks of `chunk` bytes until the framer needs more input or
/// reports an error that consumed nothing (a bad header, after which the stream is unusable).
fn decode_stream(data: &[u8], chunk: usize) -> Vec<Result<Message, Error>> {
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut chunks = data.chunks(chunk.max(1));
    loop {
        let before = buf.len();
        match decode_frame(&mut buf, MAX_MESSAGE_LEN) {
            Ok(Some(m)) => out.push(Ok(m)),
            Ok(None) => match chunks.next() {
                Some(c) => buf.extend_from_slice(c),
                None => break,
            },
            Err(e) => {
                let stuck = buf.len() == before;
                out.push(Err(without_buffer_size(e)));
                if stuck {
                    break;
                }
            }
        }
    }
    out
}

/// A bad header length reports how many bytes the buffer held, which depends on chunking.
fn without_buffer_size(e: Error) -> Error {
    match e {
        Error::BadLength {
            what: "ofp_header",
            len,
            min,
            ..
        } => Error::BadLength {
            what: "ofp_header",
            len,
            min,
            have: 0,
        },
        e => e,
    }
}

fuzz_target!(|data: &[u8]| {
    let whole = decode_stream(data, data.len());
    for m in whole.iter().flatten() {
        common::check_stable(m);
    }
    // A chunk size derived from the input, so each input is also tried split mid-header and
    // mid-body.
    let chunk = 1 + data.len() % 13;
    let chunked = decode_stream(data, chunk);
    assert_eq!(
        whole, chunked,
        "framing depends on how the stream is chunked ({chunk} bytes)"
    );
});
