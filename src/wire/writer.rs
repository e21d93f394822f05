//! Single-pass encoding into the caller's buffer with length back-patching (style.md S13,
//! after rustls `LengthPrefixedBuffer`).
//!
//! A nested option is written as: code, a placeholder length, the data, then the placeholder
//! is patched with the real length. The writer never allocates; when the buffer runs out every
//! later call fails with `EncodeError::BufferTooSmall` and the caller discards the output.

use super::codes::OptionCode;
use super::error::EncodeError;

/// A cursor over the caller's `&mut [u8]`.
#[derive(Debug)]
pub struct Writer<'a> {
    buf: &'a mut [u8],
    /// Octets written; invariant: `len <= buf.len()`.
    len: usize,
}

/// A started option or frame whose length field is patched by [`Writer::end`].
#[derive(Debug)]
#[must_use = "an option started with begin() must be closed with end()"]
pub struct Mark {
    /// Offset of the 2-octet length field.
    length_at: usize,
}

impl<'a> Writer<'a> {
    /// A writer that fills `buf` from its start.
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Octets written so far.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// True exactly when nothing has been written.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The octets written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The octets written so far, mutable (for patching fields after the fact).
    pub fn written_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }

    /// Append `bytes`.
    pub fn put(&mut self, bytes: &[u8]) -> Result<(), EncodeError> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(EncodeError::BufferTooSmall)?;
        if end > self.buf.len() {
            return Err(EncodeError::BufferTooSmall);
        }
        self.buf[self.len..end].copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    /// Append one octet.
    pub fn u8(&mut self, value: u8) -> Result<(), EncodeError> {
        self.put(&[value])
    }

    /// Append a big-endian u16.
    pub fn u16(&mut self, value: u16) -> Result<(), EncodeError> {
        self.put(&value.to_be_bytes())
    }

    /// Append a big-endian u32.
    pub fn u32(&mut self, value: u32) -> Result<(), EncodeError> {
        self.put(&value.to_be_bytes())
    }

    /// Start an option: writes its code and a placeholder option-len.
    pub fn begin(&mut self, code: OptionCode) -> Result<Mark, EncodeError> {
        self.u16(code.code())?;
        self.length_placeholder()
    }

    /// Start a TCP frame: writes a placeholder message-size (RFC 5460 §5.1).
    pub fn begin_frame(&mut self) -> Result<Mark, EncodeError> {
        self.length_placeholder()
    }

    fn length_placeholder(&mut self) -> Result<Mark, EncodeError> {
        let length_at = self.len;
        self.u16(0)?;
        Ok(Mark { length_at })
    }

    /// Close an option or frame: patch its length with the octets written since `begin`.
    pub fn end(&mut self, mark: Mark) -> Result<(), EncodeError> {
        let data_at = mark.length_at + 2;
        assert!(
            data_at <= self.len,
            "mark from another writer or ended twice"
        );
        let length = u16::try_from(self.len - data_at).map_err(|_| EncodeError::TooLong)?;
        self.buf[mark.length_at..data_at].copy_from_slice(&length.to_be_bytes());
        Ok(())
    }

    /// Write one option whose data is `data`.
    pub fn option(&mut self, code: OptionCode, data: &[u8]) -> Result<(), EncodeError> {
        let length = u16::try_from(data.len()).map_err(|_| EncodeError::TooLong)?;
        self.u16(code.code())?;
        self.u16(length)?;
        self.put(data)
    }

    /// Write an option holding one big-endian u32 (CLT_TIME, LQ_*_TIME).
    pub fn option_u32(&mut self, code: OptionCode, value: u32) -> Result<(), EncodeError> {
        self.option(code, &value.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_lengths_are_backpatched() {
        let mut buf = [0u8; 32];
        let mut w = Writer::new(&mut buf);
        let outer = w.begin(OptionCode::ClientData).unwrap();
        w.option_u32(OptionCode::CltTime, 60).unwrap();
        w.end(outer).unwrap();
        assert_eq!(w.written(), [0, 45, 0, 8, 0, 46, 0, 4, 0, 0, 0, 60]);
    }

    #[test]
    fn buffer_too_small_is_reported_not_truncated() {
        let mut buf = [0u8; 5];
        let mut w = Writer::new(&mut buf);
        assert_eq!(
            w.option_u32(OptionCode::CltTime, 1),
            Err(EncodeError::BufferTooSmall)
        );
        // The partial header written before the failure is the caller's to discard.
        assert!(w.len() <= 5);
        assert_eq!(w.put(&[0; 100]), Err(EncodeError::BufferTooSmall));
    }

    #[test]
    fn option_longer_than_u16_is_too_long() {
        let mut buf = vec![0u8; 70_000];
        let mut w = Writer::new(&mut buf);
        let mark = w.begin(OptionCode::ClientData).unwrap();
        w.put(&[0; 65_536]).unwrap();
        assert_eq!(w.end(mark), Err(EncodeError::TooLong));
        let mut w = Writer::new(&mut buf);
        assert_eq!(
            w.option(OptionCode::ClientData, &[0; 65_536]),
            Err(EncodeError::TooLong)
        );
    }
}
