//! The throughput baseline: a minimal pump that writes pre-built LEASEQUERY-DATA frames (the
//! frames lqd sent in the run) in batches of lqd's size to the same number of loopback
//! sockets, read by the same number of receiver threads, as fast as the machine allows.
//!
//! Writers are plain blocking `write` loops, round robin over their sockets, one thread per
//! lqd network worker, `TCP_NODELAY` and lqd's `SO_SNDBUF`; receivers are `mio` (epoll)
//! threads that cut frames with lqd's `FrameDecoder` and count them. No io_uring, no
//! per-connection state: the ceiling of this machine for this traffic pattern.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use lqd::wire::FrameDecoder;
use mio::{Events, Interest, Poll, Token};
use serde_json::{json, Value};

use crate::fleet::connect_from;

/// Largest batch (frames per write).
pub(crate) const BATCH_MAX: usize = 4096;

/// A pump run.
pub(crate) struct PumpArgs {
    /// Sockets.
    pub(crate) connections: usize,
    /// Frames per write.
    pub(crate) batch: usize,
    /// Writer threads.
    pub(crate) writers: usize,
    /// Receiver threads.
    pub(crate) receivers: usize,
    /// How long the writers write.
    pub(crate) duration: Duration,
    /// The frames, each with its 2-octet size prefix.
    pub(crate) frames: Vec<Vec<u8>>,
    /// Loopback source addresses.
    pub(crate) sources: Vec<Ipv4Addr>,
    /// SO_SNDBUF of the writing sockets.
    pub(crate) send_buffer: usize,
}

/// What the pump delivered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PumpReport {
    /// Frames received.
    pub(crate) frames: u64,
    /// Octets received.
    pub(crate) bytes: u64,
    /// `write` calls.
    pub(crate) writes: u64,
    /// From the first write to the end of the last read, seconds.
    pub(crate) seconds: f64,
    /// Frames per write.
    pub(crate) batch: usize,
}

impl PumpReport {
    /// Frames received per second.
    pub(crate) fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.seconds.max(1e-9)
    }

    /// As JSON.
    pub(crate) fn to_json(self) -> Value {
        json!({
            "frames": self.frames,
            "bytes": self.bytes,
            "writes": self.writes,
            "seconds": self.seconds,
            "batch": self.batch,
            "frames_per_s": self.frames_per_s(),
            "bytes_per_s": self.bytes as f64 / self.seconds.max(1e-9),
        })
    }
}

/// Run the pump.
pub(crate) fn run(args: &PumpArgs) -> anyhow::Result<PumpReport> {
    ensure!(!args.frames.is_empty(), "the pump needs frames");
    ensure!(args.connections > 0, "the pump needs connections");
    let batch = args.batch.clamp(1, BATCH_MAX);
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("pump listener")?;
    let target: SocketAddr = listener.local_addr()?;
    let mut readers = Vec::with_capacity(args.connections);
    let mut writers = Vec::with_capacity(args.connections);
    for i in 0..args.connections {
        let client = connect_from(args.sources[i % args.sources.len()], target)
            .with_context(|| format!("pump connection {i}"))?;
        let (server, _) = listener.accept().context("pump accept")?;
        server.set_nodelay(true)?;
        socket2::SockRef::from(&server).set_send_buffer_size(args.send_buffer)?;
        client.set_nonblocking(true)?;
        readers.push(client);
        writers.push(server);
    }
    let received = Arc::new(AtomicU64::new(0));
    let received_bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let receiver_threads =
        spawn_receivers(readers, args.receivers, &received, &received_bytes, &stop)?;
    let started = Instant::now();
    let deadline = started + args.duration;
    let writer_threads = spawn_writers(writers, args, batch, deadline)?;
    let mut writes = 0;
    for t in writer_threads {
        writes += t
            .join()
            .map_err(|_| anyhow::anyhow!("a pump writer panicked"))??;
    }
    // Let the receivers drain what is in flight.
    let mut last = u64::MAX;
    while last != received.load(Ordering::Acquire) {
        last = received.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(50));
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Release);
    for t in receiver_threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a pump receiver panicked"))??;
    }
    Ok(PumpReport {
        frames: received.load(Ordering::Acquire),
        bytes: received_bytes.load(Ordering::Acquire),
        writes,
        seconds,
        batch,
    })
}

type Handle<T> = std::thread::JoinHandle<anyhow::Result<T>>;

fn spawn_writers(
    sockets: Vec<TcpStream>,
    args: &PumpArgs,
    batch: usize,
    deadline: Instant,
) -> anyhow::Result<Vec<Handle<u64>>> {
    let threads = args.writers.max(1);
    let mut groups: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in sockets.into_iter().enumerate() {
        groups[i % threads].push(s);
    }
    // Batches start at different frames so that sockets do not all carry the same octets.
    let batches: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..args.frames.len().min(16))
            .map(|offset| {
                (0..batch)
                    .flat_map(|j| {
                        args.frames[(offset + j) % args.frames.len()]
                            .iter()
                            .copied()
                    })
                    .collect()
            })
            .collect(),
    );
    let mut handles = Vec::with_capacity(threads);
    for (w, mut group) in groups.into_iter().enumerate() {
        let batches = Arc::clone(&batches);
        let handle = std::thread::Builder::new()
            .name(format!("pump-writer-{w}"))
            .spawn(move || -> anyhow::Result<u64> {
                let mut writes = 0u64;
                let mut turn = 0usize;
                while Instant::now() < deadline {
                    for socket in &mut group {
                        socket.write_all(&batches[turn % batches.len()])?;
                        writes += 1;
                        turn += 1;
                    }
                }
                Ok(writes)
            })?;
        handles.push(handle);
    }
    Ok(handles)
}

fn spawn_receivers(
    sockets: Vec<TcpStream>,
    threads: usize,
    received: &Arc<AtomicU64>,
    received_bytes: &Arc<AtomicU64>,
    stop: &Arc<AtomicBool>,
) -> anyhow::Result<Vec<Handle<()>>> {
    let threads = threads.max(1);
    let mut groups: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in sockets.into_iter().enumerate() {
        groups[i % threads].push(s);
    }
    let mut handles = Vec::with_capacity(threads);
    for (r, group) in groups.into_iter().enumerate() {
        let (received, bytes, stop) = (
            Arc::clone(received),
            Arc::clone(received_bytes),
            Arc::clone(stop),
        );
        let handle = std::thread::Builder::new()
            .name(format!("pump-reader-{r}"))
            .spawn(move || receive(group, &received, &bytes, &stop))?;
        handles.push(handle);
    }
    Ok(handles)
}

/// Read and count frames until `stop`.
fn receive(
    group: Vec<TcpStream>,
    received: &AtomicU64,
    received_bytes: &AtomicU64,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let poll = Poll::new()?;
    let mut sockets: Vec<(mio::net::TcpStream, FrameDecoder)> = Vec::with_capacity(group.len());
    for (t, s) in group.into_iter().enumerate() {
        let mut socket = mio::net::TcpStream::from_std(s);
        poll.registry()
            .register(&mut socket, Token(t), Interest::READABLE)?;
        sockets.push((socket, FrameDecoder::new(u16::MAX)));
    }
    let mut poll = poll;
    let mut events = Events::with_capacity(1024);
    while !stop.load(Ordering::Acquire) {
        match poll.poll(&mut events, Some(Duration::from_millis(5))) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        }
        let (mut frames, mut bytes) = (0u64, 0u64);
        for event in &events {
            let (socket, decoder) = &mut sockets[event.token().0];
            loop {
                match socket.read(decoder.spare()) {
                    Ok(0) => break,
                    Ok(n) => {
                        decoder.commit(n);
                        bytes += n as u64;
                        while decoder.next_frame()?.is_some() {
                            frames += 1;
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        received.fetch_add(frames, Ordering::Release);
        received_bytes.fetch_add(bytes, Ordering::Relaxed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pump_delivers_whole_frames() {
        let frame = vec![0, 6, 17, 0, 0, 1, 0, 0];
        let report = run(&PumpArgs {
            connections: 4,
            batch: 8,
            writers: 2,
            receivers: 2,
            duration: Duration::from_millis(200),
            frames: vec![frame.clone()],
            sources: vec![Ipv4Addr::LOCALHOST],
            send_buffer: 65536,
        })
        .unwrap();
        assert!(report.frames > 0);
        assert_eq!(report.bytes, report.frames * frame.len() as u64);
        assert_eq!(report.frames, report.writes * 8);
    }
}
