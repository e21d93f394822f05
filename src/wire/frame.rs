//! TCP framing of leasequery messages (RFC 5460 §5.1, reused by RFC 7653 §6.1).
//!
//! ```text
//! +--------+--------+--------+--------+--------+--------+---- ...
//! | message-size    |msg-type| transaction-id (3 octets)| options ...
//! +--------+--------+--------+--------+--------+--------+---- ...
//! ```
//!
//! [`FrameDecoder`] takes the byte stream in pieces of any size (partial reads, several frames
//! in one read) and yields whole messages. Its buffer starts at `INITIAL_CAPACITY` (1 KiB) octets
//! (queries are small, and a server holds thousands of idle decoders) and grows once, to
//! one message of the configured maximum, when a larger message-size arrives; a
//! message-size above that maximum, or below the 4-octet header, is rejected as soon as
//! the 2-octet prefix arrives, before any of the body is buffered. After an error the
//! decoder stays failed: the stream has lost its framing and the connection must be closed.

use super::error::Error;
use super::message::HEADER_LEN;

/// Octets of the message-size prefix.
pub const PREFIX_LEN: usize = 2;

/// The decoder's first buffer: frames up to this size (prefix included) need no more.
const INITIAL_CAPACITY: usize = 1024;

/// A streaming frame decoder with a fixed buffer.
#[derive(Debug)]
pub struct FrameDecoder {
    /// [`INITIAL_CAPACITY`], or `PREFIX_LEN + message_size_max` (one maximal frame) once a
    /// larger frame came (or when that is smaller).
    buf: Box<[u8]>,
    /// First octet not yet returned; invariant: `start <= end <= buf.len()`.
    start: usize,
    /// End of the received octets.
    end: usize,
    message_size_max: u16,
    /// The error that ended the stream, returned again on every later call.
    failed: Option<Error>,
}

/// A decoder with no buffer (nothing allocated): it yields no frame and has no spare
/// space. Stands in while a connection borrows its real decoder.
impl Default for FrameDecoder {
    fn default() -> Self {
        Self {
            buf: Box::default(),
            start: 0,
            end: 0,
            message_size_max: u16::MAX,
            failed: None,
        }
    }
}

impl FrameDecoder {
    /// Forget everything buffered and any failure: the decoder of a new connection,
    /// keeping its buffer.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.failed = None;
    }

    /// A decoder for messages of at most `message_size_max` octets (at least 4).
    pub fn new(message_size_max: u16) -> Self {
        assert!(
            usize::from(message_size_max) >= HEADER_LEN,
            "maximum below the header size"
        );
        let capacity = (PREFIX_LEN + usize::from(message_size_max)).min(INITIAL_CAPACITY);
        Self {
            buf: vec![0; capacity].into_boxed_slice(),
            start: 0,
            end: 0,
            message_size_max,
            failed: None,
        }
    }

    /// The configured maximum message-size.
    pub const fn message_size_max(&self) -> u16 {
        self.message_size_max
    }

    /// Octets received but not yet returned as frames.
    pub const fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Space to receive into (e.g. a `recv` buffer). Call [`Self::next_frame`] until it
    /// returns `Ok(None)` first; then this is never empty.
    pub fn spare(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end >= PREFIX_LEN {
            let size = u16::from_be_bytes([self.buf[0], self.buf[1]]);
            // An invalid size fails in next_frame without growing anything.
            let valid = usize::from(size) >= HEADER_LEN && size <= self.message_size_max;
            if valid && PREFIX_LEN + usize::from(size) > self.buf.len() {
                // A frame larger than the first buffer: grow once, to the maximum.
                let mut grown = vec![0; PREFIX_LEN + usize::from(self.message_size_max)];
                grown[..self.end].copy_from_slice(&self.buf[..self.end]);
                self.buf = grown.into_boxed_slice();
            }
        }
        &mut self.buf[self.end..]
    }

    /// Record that `n` octets were written into [`Self::spare`].
    pub fn commit(&mut self, n: usize) {
        assert!(self.start == 0 || n == 0, "commit without spare()");
        assert!(
            self.end + n <= self.buf.len(),
            "commit past the spare space"
        );
        self.end += n;
    }

    /// Copy as much of `input` as fits; returns the octets taken. The caller feeds the rest
    /// after draining frames.
    pub fn extend(&mut self, input: &[u8]) -> usize {
        let spare = self.spare();
        let n = spare.len().min(input.len());
        spare[..n].copy_from_slice(&input[..n]);
        self.commit(n);
        n
    }

    /// The next complete message (without its size prefix), `Ok(None)` when more input is
    /// needed, or the framing error that ends the stream.
    pub fn next_frame(&mut self) -> Result<Option<&[u8]>, Error> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        if self.buffered() < PREFIX_LEN {
            return Ok(None);
        }
        let size = u16::from_be_bytes([self.buf[self.start], self.buf[self.start + 1]]);
        let error = if usize::from(size) < HEADER_LEN {
            Some(Error::FrameTooShort { size })
        } else if size > self.message_size_max {
            Some(Error::FrameTooLarge {
                size,
                max: self.message_size_max,
            })
        } else {
            None
        };
        if let Some(error) = error {
            self.failed = Some(error);
            return Err(error);
        }
        let frame_len = PREFIX_LEN + usize::from(size);
        if self.buffered() < frame_len {
            return Ok(None);
        }
        let message = self.start + PREFIX_LEN..self.start + frame_len;
        self.start += frame_len;
        assert!(self.start <= self.end);
        if self.start == self.end {
            // Nothing pending: the next receive starts at the front without a copy. The
            // returned slice stays valid: the octets are not touched until spare().
            self.start = 0;
            self.end = 0;
        }
        Ok(Some(&self.buf[message]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_FRAMES: [u8; 14] = [0, 4, 23, 1, 2, 3, 0, 6, 17, 0, 0, 1, 0xaa, 0xbb];

    #[test]
    fn byte_at_a_time_yields_both_frames() {
        let mut d = FrameDecoder::new(100);
        let mut frames = Vec::new();
        for &b in &TWO_FRAMES {
            assert_eq!(d.extend(&[b]), 1);
            while let Some(f) = d.next_frame().unwrap() {
                frames.push(f.to_vec());
            }
        }
        assert_eq!(frames, [vec![23, 1, 2, 3], vec![17, 0, 0, 1, 0xaa, 0xbb]]);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn oversize_is_rejected_before_the_body_arrives() {
        let mut d = FrameDecoder::new(10);
        d.extend(&[0, 11]);
        assert_eq!(
            d.next_frame(),
            Err(Error::FrameTooLarge { size: 11, max: 10 })
        );
        // The decoder stays failed.
        assert_eq!(
            d.next_frame(),
            Err(Error::FrameTooLarge { size: 11, max: 10 })
        );
    }

    #[test]
    fn a_frame_larger_than_the_first_buffer_grows_it_once() {
        let mut d = FrameDecoder::new(u16::MAX);
        assert_eq!(d.spare().len(), INITIAL_CAPACITY);
        let size: u16 = 5000;
        let mut frame = size.to_be_bytes().to_vec();
        frame.extend((0..size).map(|i| (i % 251) as u8));
        let mut fed = 0;
        while fed < frame.len() {
            assert_eq!(d.next_frame().unwrap(), None);
            fed += d.extend(&frame[fed..(fed + 700).min(frame.len())]);
        }
        assert_eq!(d.next_frame().unwrap(), Some(&frame[2..]));
        assert_eq!(d.spare().len(), PREFIX_LEN + usize::from(u16::MAX));
        // A size over the maximum fails without growing.
        let mut small = FrameDecoder::new(2000);
        assert_eq!(small.extend(&[0x10, 0x00]), 2);
        assert_eq!(small.spare().len(), INITIAL_CAPACITY - 2);
        assert!(small.next_frame().is_err());
    }

    #[test]
    fn spare_is_never_empty_after_draining() {
        let mut d = FrameDecoder::new(4);
        assert_eq!(d.extend(&[0, 4, 1, 2, 3, 4, 0, 4, 9]), 6);
        assert_eq!(d.next_frame().unwrap(), Some(&[1, 2, 3, 4][..]));
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.extend(&[0, 4, 9]), 3);
        assert_eq!(d.next_frame().unwrap(), None);
        assert_eq!(d.spare().len(), 3);
    }
}
