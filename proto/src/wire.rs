//! Bounds-checked reading and length-patching writing of OpenFlow wire data.
//!
//! Every read goes through [`Reader`], which never panics: a read past the end of the current
//! unit is an [`Error::Truncated`] naming that unit. Variable-length payloads are handed out as
//! [`Bytes`] slices of the received frame, so decoding copies no payload.
//!
//! Emitting appends to a `Vec<u8>`; a unit whose length field covers what follows it writes a
//! placeholder and patches it with [`patch_u16`] once the body is written, so no caller ever
//! supplies a length.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes};

use crate::{Error, MacAddr};

/// A cursor over one unit (a message, a TLV, a list) of a received frame.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    base: &'a Bytes,
    pos: usize,
    end: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// A reader over the whole of `base`, naming it `what` in errors.
    #[inline]
    pub fn new(base: &'a Bytes, what: &'static str) -> Self {
        Reader {
            base,
            pos: 0,
            end: base.len(),
            what,
        }
    }

    /// Bytes left in this unit.
    #[inline]
    pub fn remaining(&self) -> usize {
        self.end - self.pos
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.pos >= self.end
    }

    /// The name of the unit this reader covers.
    #[inline]
    pub fn what(&self) -> &'static str {
        self.what
    }

    #[inline]
    fn need(&self, n: usize) -> Result<(), Error> {
        if self.remaining() < n {
            Err(Error::Truncated {
                what: self.what,
                need: n,
                have: self.remaining(),
            })
        } else {
            Ok(())
        }
    }

    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        self.need(n)?;
        let base: &'a Bytes = self.base;
        let s = base.get(self.pos..self.pos + n).ok_or(Error::Truncated {
            what: self.what,
            need: n,
            have: 0,
        })?;
        self.pos += n;
        Ok(s)
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Error> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    #[inline]
    pub fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.array::<1>()?[0])
    }
    #[inline]
    pub fn u16(&mut self) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    #[inline]
    pub fn u24(&mut self) -> Result<u32, Error> {
        let [a, b, c] = self.array::<3>()?;
        Ok(u32::from_be_bytes([0, a, b, c]))
    }
    #[inline]
    pub fn u32(&mut self) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    #[inline]
    pub fn u64(&mut self) -> Result<u64, Error> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    #[inline]
    pub fn mac(&mut self) -> Result<MacAddr, Error> {
        Ok(MacAddr(self.array()?))
    }
    #[inline]
    pub fn ipv4(&mut self) -> Result<Ipv4Addr, Error> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }
    #[inline]
    pub fn ipv6(&mut self) -> Result<Ipv6Addr, Error> {
        Ok(Ipv6Addr::from(self.array::<16>()?))
    }

    /// Skips `n` bytes of padding; their content is not checked (senders must zero them, and
    /// receivers must ignore them, OpenFlow 1.3.5 section 7).
    #[inline]
    pub fn skip(&mut self, n: usize) -> Result<(), Error> {
        self.take(n).map(|_| ())
    }

    /// The next `n` bytes as a zero-copy slice of the frame.
    #[inline]
    pub fn bytes(&mut self, n: usize) -> Result<Bytes, Error> {
        self.need(n)?;
        let b = self.base.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(b)
    }

    /// Everything left in this unit.
    #[inline]
    pub fn rest(&mut self) -> Bytes {
        let b = self.base.slice(self.pos..self.end);
        self.pos = self.end;
        b
    }

    /// A fixed-size, NUL-terminated string field (port name, table name, descriptions): the
    /// bytes before the first NUL, at most `n - 1` (the last byte is the terminator), decoded
    /// lossily and cut at a character boundary to fit `n - 1` bytes again, so that
    /// [`put_string`] writes back exactly what was read.
    #[inline]
    pub fn string(&mut self, n: usize) -> Result<String, Error> {
        let s = self.take(n)?;
        let s = s.get(..n.saturating_sub(1)).unwrap_or_default();
        let end = s.iter().position(|&b| b == 0).unwrap_or(s.len());
        let mut v = String::from_utf8_lossy(s.get(..end).unwrap_or_default()).into_owned();
        v.truncate(floor_char_boundary(&v, n.saturating_sub(1)));
        Ok(v)
    }

    /// A reader over the next `n` bytes, which this reader then skips.
    #[inline]
    pub fn sub(&mut self, n: usize, what: &'static str) -> Result<Reader<'a>, Error> {
        self.need(n).map_err(|e| e.within(what))?;
        let r = Reader {
            base: self.base,
            pos: self.pos,
            end: self.pos + n,
            what,
        };
        self.pos += n;
        Ok(r)
    }

    /// Peeks a big-endian u16 at `offset` from the current position without consuming it.
    #[inline]
    pub fn peek_u16(&self, offset: usize) -> Result<u16, Error> {
        self.need(offset + 2)?;
        let s = self
            .base
            .get(self.pos + offset..self.pos + offset + 2)
            .ok_or(Error::Truncated {
                what: self.what,
                need: offset + 2,
                have: self.remaining(),
            })?;
        let mut a = [0u8; 2];
        a.copy_from_slice(s);
        Ok(u16::from_be_bytes(a))
    }

    /// Fails unless the unit was consumed exactly.
    #[inline]
    pub fn finish(&self) -> Result<(), Error> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Trailing {
                what: self.what,
                extra: self.remaining(),
            })
        }
    }
}

/// Reads a length-prefixed TLV whose 16-bit length sits at `len_offset` from its start and covers
/// the whole TLV; returns a reader over exactly that TLV. `min` is the smallest legal length.
#[inline]
pub fn tlv<'a>(
    r: &mut Reader<'a>,
    len_offset: usize,
    min: usize,
    what: &'static str,
) -> Result<Reader<'a>, Error> {
    let len = r.peek_u16(len_offset).map_err(|e| e.within(what))? as usize;
    if len < min {
        return Err(Error::BadLength {
            what,
            len,
            min,
            have: r.remaining(),
        });
    }
    if len > r.remaining() {
        return Err(Error::Truncated {
            what,
            need: len,
            have: r.remaining(),
        });
    }
    r.sub(len, what)
}

/// Writes `value` as a big-endian u16 at `at`, which an earlier placeholder reserved.
#[inline]
pub fn patch_u16(out: &mut [u8], at: usize, value: usize) {
    if let Some(s) = out.get_mut(at..at + 2) {
        s.copy_from_slice(&(value.min(u16::MAX as usize) as u16).to_be_bytes());
    }
}

/// Zero bytes up to the next multiple of 8 measured from `start`.
#[inline]
pub fn pad_to_8(out: &mut Vec<u8>, start: usize) {
    let len = out.len() - start;
    out.put_bytes(0, (8 - len % 8) % 8);
}

/// Zero bytes.
#[inline]
pub fn pad(out: &mut Vec<u8>, n: usize) {
    out.put_bytes(0, n);
}

/// A NUL-padded fixed-size string field; longer names are cut to at most `n - 1` bytes, at a
/// character boundary, so a NUL remains and the bytes stay UTF-8.
#[inline]
pub fn put_string(out: &mut Vec<u8>, s: &str, n: usize) {
    let take = floor_char_boundary(s, n.saturating_sub(1));
    out.extend_from_slice(s.as_bytes().get(..take).unwrap_or_default());
    out.put_bytes(0, n - take);
}

/// The largest character boundary of `s` at or below `max` (`str::floor_char_boundary`, which
/// is newer than this crate's minimum Rust).
#[inline]
fn floor_char_boundary(s: &str, max: usize) -> usize {
    if max >= s.len() {
        return s.len();
    }
    (0..=max)
        .rev()
        .find(|i| s.is_char_boundary(*i))
        .unwrap_or(0)
}

/// Rounds up to a multiple of 8.
#[inline]
pub const fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let b = Bytes::from_static(&[1, 2, 3]);
        let mut r = Reader::new(&b, "unit");
        assert_eq!(r.u16().unwrap(), 0x0102);
        let e = r.u16().unwrap_err();
        assert_eq!(
            e,
            Error::Truncated {
                what: "unit",
                need: 2,
                have: 1
            }
        );
        assert_eq!(r.u8().unwrap(), 3);
        assert!(r.is_empty());
    }

    #[test]
    #[inline]
    fn strings_stop_at_nul_and_are_cut_to_fit() {
        let mut out = Vec::new();
        put_string(&mut out, "abcdef", 4);
        assert_eq!(out, b"abc\0");
        let b = Bytes::from(out);
        assert_eq!(Reader::new(&b, "s").string(4).unwrap(), "abc");
        // Cut at a character boundary, never inside a multi-byte character.
        let mut out = Vec::new();
        put_string(&mut out, "ab\u{e9}", 4);
        assert_eq!(out, b"ab\0\0");
        // The last byte is the terminator even when it is not a NUL, and invalid UTF-8 is
        // replaced, then cut to fit: what is read is what put_string writes back.
        let b = Bytes::from_static(b"abcd");
        assert_eq!(Reader::new(&b, "s").string(4).unwrap(), "abc");
        let b = Bytes::from_static(&[0xff, 0xfe, 0xfd, 0xfc]);
        let v = Reader::new(&b, "s").string(4).unwrap();
        assert_eq!(v, "\u{fffd}");
        let mut out = Vec::new();
        put_string(&mut out, &v, 4);
        assert_eq!(Reader::new(&Bytes::from(out), "s").string(4).unwrap(), v);
    }

    #[test]
    #[inline]
    fn tlv_rejects_short_and_overlong_lengths() {
        let b = Bytes::from_static(&[0, 1, 0, 2, 0, 0]);
        let mut r = Reader::new(&b, "list");
        assert!(matches!(
            tlv(&mut r, 2, 4, "t"),
            Err(Error::BadLength { len: 2, .. })
        ));
        let b = Bytes::from_static(&[0, 1, 0, 9, 0, 0]);
        let mut r = Reader::new(&b, "list");
        assert!(matches!(
            tlv(&mut r, 2, 4, "t"),
            Err(Error::Truncated { need: 9, .. })
        ));
    }
}
