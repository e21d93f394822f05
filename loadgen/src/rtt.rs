//! The loopback round-trip baseline: one connection, `count` round trips of a framed
//! LEASEQUERY-DATA (the 66-octet message of protocol.md §2.7), echoed by a thread that
//! decodes frames with lqd's `FrameDecoder` and writes each back. Latency is recorded per
//! round trip into an HDR histogram (3 significant figures, 1 µs .. 60 s).

use std::fmt;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use hdrhistogram::Histogram;
use lqd::wire::build::{framed, write_data};
use lqd::wire::{FrameDecoder, Xid};

/// Arguments of `lq-loadgen rtt`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Round trips to measure (after 1,000 of warm-up).
    #[arg(long, default_value_t = 100_000)]
    pub(crate) count: u64,
    /// Loopback address to listen on and connect to.
    #[arg(long, default_value = "127.0.0.1")]
    pub(crate) address: String,
}

/// Percentiles of the round trips, in microseconds.
pub(crate) struct Report {
    /// Round-trip times, µs.
    pub(crate) histogram: Histogram<u64>,
    elapsed: Duration,
}

const WARM_UP: u64 = 1_000;

/// The framed 66-octet LEASEQUERY-DATA of protocol.md §2.7.
pub(crate) fn frame() -> anyhow::Result<Vec<u8>> {
    let client_data = [
        0x00, 0x2d, 0x00, 0x32, 0x00, 0x01, 0x00, 0x0a, 0x00, 0x03, 0x00, 0x01, 0x02, 0x00, 0x00,
        0x00, 0x00, 0x01, 0x00, 0x05, 0x00, 0x18, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x0e, 0x10, 0x00, 0x00, 0x1c,
        0x20, 0x00, 0x2e, 0x00, 0x04, 0x00, 0x00, 0x00, 0x3c,
    ];
    let xid = Xid::from_bytes([0xab, 0xcd, 0xef]);
    let mut buf = [0u8; 128];
    let n = framed(&mut buf, |w| {
        write_data(w, xid, None, Some(849_182_400), Some(&client_data))
    })
    .map_err(|e| anyhow::anyhow!("building the frame: {e}"))?;
    Ok(buf[..n].to_vec())
}

/// Echo every whole frame back until the peer closes.
fn echo(mut stream: TcpStream) -> anyhow::Result<()> {
    stream.set_nodelay(true)?;
    let mut decoder = FrameDecoder::new(u16::MAX);
    let mut out = Vec::with_capacity(usize::from(u16::MAX) + 2);
    loop {
        let n = stream.read(decoder.spare())?;
        if n == 0 {
            return Ok(());
        }
        decoder.commit(n);
        out.clear();
        while let Some(message) = decoder.next_frame()? {
            let size = u16::try_from(message.len())?;
            out.extend_from_slice(&size.to_be_bytes());
            out.extend_from_slice(message);
        }
        stream.write_all(&out)?;
    }
}

/// Run the baseline.
pub(crate) fn run(args: &Args) -> anyhow::Result<Report> {
    ensure!(args.count > 0, "--count must be at least 1");
    let listener = TcpListener::bind((args.address.as_str(), 0))
        .with_context(|| format!("binding {}", args.address))?;
    let target = listener.local_addr()?;
    let server = thread::spawn(move || -> anyhow::Result<()> {
        let (stream, _) = listener.accept()?;
        echo(stream)
    });
    let frame = frame()?;
    let mut stream = TcpStream::connect(target).context("connecting to the echo thread")?;
    stream.set_nodelay(true)?;
    let mut reply = vec![0u8; frame.len()];
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let started = Instant::now();
    for i in 0..WARM_UP + args.count {
        let sent = Instant::now();
        stream.write_all(&frame)?;
        stream.read_exact(&mut reply)?;
        ensure!(reply == frame, "echo differs from the frame sent");
        if i >= WARM_UP {
            let micros = u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX);
            histogram.saturating_record(micros.max(1));
        }
    }
    let elapsed = started.elapsed();
    stream.shutdown(Shutdown::Write)?;
    server
        .join()
        .map_err(|_| anyhow::anyhow!("echo thread panicked"))??;
    Ok(Report { histogram, elapsed })
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = &self.histogram;
        writeln!(
            f,
            "loopback round trip, {} samples in {:.2?}",
            h.len(),
            self.elapsed
        )?;
        writeln!(
            f,
            "{:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "p50", "p90", "p99", "p99.9", "p99.99", "max"
        )?;
        writeln!(
            f,
            "{:>6}µs {:>6}µs {:>6}µs {:>6}µs {:>6}µs {:>6}µs",
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.value_at_quantile(0.9999),
            h.max()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_baseline_measures_every_round_trip() {
        let report = run(&Args {
            count: 200,
            address: "127.0.0.1".into(),
        })
        .unwrap();
        assert_eq!(report.histogram.len(), 200);
        assert!(report.histogram.min() >= 1);
        let text = report.to_string();
        assert!(text.contains("200 samples"), "{text}");
    }
}
