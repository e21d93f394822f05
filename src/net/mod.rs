//! The io_uring reactor: rings, sockets, in-flight operation slots. All syscalls of the
//! serving path live here (architecture.md, "The reactor").
//!
//! Ownership rules (style.md S7–S10), which every `unsafe` block here relies on:
//! 1. A buffer handed to the kernel belongs to it until its completion arrives: a slot
//!    keeps its receive and send buffers, and never touches the region a receive or send in
//!    flight covers, until that completion.
//! 2. An fd is closed only when no operation on it is in flight (`Open → Closing → Free`).
//! 3. `user_data` = kind (8 bits) | generation (24 bits) | slot (32 bits); a completion for
//!    another generation of the slot is a bug and is asserted.
//! 4. Completions are copied out, then dispatched (drain, then dispatch).
#![allow(unsafe_code)]

pub mod worker;

use std::io;

use io_uring::{opcode, IoUring, Probe};

/// Check that io_uring works here and supports every opcode lqd uses; the error says what
/// to do (style.md T12).
pub fn probe() -> io::Result<()> {
    let ring = IoUring::new(8).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "io_uring is unavailable ({e}): check kernel.io_uring_disabled (sysctl) and any \
                 seccomp profile (containers) — lqd needs Linux ≥ 6.1 with io_uring enabled"
            ),
        )
    })?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    let needed = [
        ("ACCEPT", opcode::Accept::CODE),
        ("RECV", opcode::Recv::CODE),
        ("SEND", opcode::Send::CODE),
        ("SENDMSG", opcode::SendMsg::CODE),
        ("TIMEOUT", opcode::Timeout::CODE),
        ("READ", opcode::Read::CODE),
        ("ASYNC_CANCEL", opcode::AsyncCancel::CODE),
    ];
    for (name, code) in needed {
        if !probe.is_supported(code) {
            return Err(io::Error::other(format!(
                "io_uring here lacks IORING_OP_{name}: lqd needs Linux ≥ 6.1"
            )));
        }
    }
    Ok(())
}

/// Wake-ups to the network workers: one eventfd per worker. The ingest thread rings them
/// after queuing changes for the shards the workers own; a worker rings the others after
/// its shards appended records. So Active connections see a change at once instead of at
/// the next tick (S-50). The doorbell only wakes; the records are read from
/// the logs (style.md S18, T16).
#[derive(Debug)]
pub struct Doorbells {
    fds: Vec<std::os::fd::OwnedFd>,
}

impl Doorbells {
    /// One eventfd per worker.
    pub fn new(workers: usize) -> io::Result<Self> {
        let fds = (0..workers)
            .map(|_| {
                // SAFETY: eventfd(2) with no pointers; the result is checked before use.
                let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                // SAFETY: a fresh descriptor that nothing else owns.
                Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Self { fds })
    }

    /// Wake every worker.
    pub fn ring(&self) {
        self.ring_except(usize::MAX);
    }

    /// Wake every worker but `index` (a worker that wrote records serves its own
    /// connections in the same loop iteration).
    pub fn ring_except(&self, index: usize) {
        let one = 1u64.to_ne_bytes();
        for (_, fd) in self.fds.iter().enumerate().filter(|(i, _)| *i != index) {
            // SAFETY: an 8-octet write from a live stack buffer to an eventfd we own. A full
            // counter (EAGAIN) means a wake-up is pending already: nothing is lost.
            let _ = unsafe {
                libc::write(
                    std::os::fd::AsRawFd::as_raw_fd(fd),
                    one.as_ptr().cast(),
                    one.len(),
                )
            };
        }
    }

    /// Wake worker `index`.
    pub fn ring_one(&self, index: usize) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: as in `ring_except`.
        let _ = unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&self.fds[index]),
                one.as_ptr().cast(),
                one.len(),
            )
        };
    }

    /// The descriptor of worker `index`.
    pub fn fd(&self, index: usize) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.fds[index])
    }
}
