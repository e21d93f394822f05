//! A bounded reader over a borrowed byte slice (after rustls `codec::Reader`).
//!
//! Every read checks the remaining length first and fails with `Error::Truncated` naming the
//! field; no index arithmetic can underflow, because the only subtraction is
//! `remaining = len - cursor` with `cursor <= len` kept as an invariant.

use super::error::{Error, Field};

/// A cursor over `&'a [u8]` that never reads past its end.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    /// Octets consumed; invariant: `cursor <= bytes.len()`.
    cursor: usize,
}

impl<'a> Reader<'a> {
    /// A reader over all of `bytes`.
    pub const fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, cursor: 0 }
    }

    /// Octets not yet read.
    pub fn remaining(&self) -> usize {
        debug_assert!(self.cursor <= self.bytes.len());
        self.bytes.len() - self.cursor
    }

    /// True exactly when every octet has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// Octets already read (the offset of the next read).
    pub const fn position(&self) -> usize {
        self.cursor
    }

    /// Take the next `len` octets, or fail naming `field`.
    pub fn take(&mut self, len: usize, field: Field) -> Result<&'a [u8], Error> {
        let available = self.remaining();
        if len > available {
            return Err(Error::Truncated {
                field,
                needed: len,
                available,
            });
        }
        let start = self.cursor;
        self.cursor += len;
        assert!(self.cursor <= self.bytes.len());
        Ok(&self.bytes[start..self.cursor])
    }

    /// Take a fixed-size array.
    pub fn array<const N: usize>(&mut self, field: Field) -> Result<[u8; N], Error> {
        let bytes = self.take(N, field)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    /// Read one octet.
    pub fn u8(&mut self, field: Field) -> Result<u8, Error> {
        Ok(self.array::<1>(field)?[0])
    }

    /// Read a big-endian u16.
    pub fn u16(&mut self, field: Field) -> Result<u16, Error> {
        Ok(u16::from_be_bytes(self.array(field)?))
    }

    /// Read a big-endian u32.
    pub fn u32(&mut self, field: Field) -> Result<u32, Error> {
        Ok(u32::from_be_bytes(self.array(field)?))
    }

    /// Take everything that is left.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.cursor;
        self.cursor = self.bytes.len();
        &self.bytes[start..]
    }

    /// Succeed only when nothing is left; trailing octets are an error, never skipped (S12).
    pub fn finish(&self, field: Field) -> Result<(), Error> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(Error::TrailingBytes { field, count }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded() {
        let mut r = Reader::new(&[1, 2, 3]);
        assert_eq!(r.u16(Field::MessageHeader), Ok(0x0102));
        assert_eq!(
            r.u16(Field::OptionHeader),
            Err(Error::Truncated {
                field: Field::OptionHeader,
                needed: 2,
                available: 1
            })
        );
        // A failed read consumes nothing.
        assert_eq!(r.remaining(), 1);
        assert_eq!(
            r.finish(Field::MessageHeader),
            Err(Error::TrailingBytes {
                field: Field::MessageHeader,
                count: 1
            })
        );
        assert_eq!(r.u8(Field::MessageHeader), Ok(3));
        assert!(r.is_empty());
        assert_eq!(r.finish(Field::MessageHeader), Ok(()));
        assert_eq!(r.rest(), &[] as &[u8]);
    }

    #[test]
    fn take_past_end_is_rejected_even_for_huge_lengths() {
        let mut r = Reader::new(&[0; 4]);
        assert!(r.take(usize::MAX, Field::OptionHeader).is_err());
        assert_eq!(r.take(4, Field::OptionHeader).map(<[u8]>::len), Ok(4));
    }
}
