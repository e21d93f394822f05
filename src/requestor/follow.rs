//! The Active Leasequery loop and the Bulk driver, over blocking connections ([`Conn`]).
//!
//! [`follow`] keeps one Active query running: it connects, sends ACTIVELEASEQUERY with the
//! last saved base time as LQ_START_TIME, hands bindings and checkpoints to a
//! [`Sink`], and after a lost connection, a receive timeout or QueryTerminated
//! reconnects after a backoff whose minimum is `retry_min` (R-11; RFC default 60 s). On
//! DataMissing it runs the Bulk recovery of R-32 on a second connection in a thread,
//! whose bindings come back over a bounded channel and are applied between reads, so the
//! stream goes on meanwhile.

use std::net::SocketAddr;
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, TryRecvError};

use crate::wire::{Xid, MESSAGE_SIZE_MAX};

use super::active::{Active, Event};
use super::binding::Binding;
use super::bulk::{Bulk, QUERY_SIZE_MAX};
use super::conn::{self, Conn, Received};
use super::output::Origin;
use super::spec::QuerySpec;
use super::time::SkewEstimate;
use super::{Clock, RequestorError};

/// Bindings the recovery thread may have in flight before it waits for the stream loop
/// (bounded memory: style.md S1).
pub const RECOVERY_QUEUE_MAX: usize = 1024;

/// How long one read waits before the loop looks at the recovery queue and the timers.
const READ_SLICE: Duration = Duration::from_millis(100);

/// Timers and limits of a requestor.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The server.
    pub server: SocketAddr,
    /// Our DUID.
    pub requestor: Vec<u8>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// ACTIVE_LQ_RCV_TIMEOUT.
    pub rcv_timeout: Duration,
    /// BULK_LQ_DATA_TIMEOUT.
    pub bulk_timeout: Duration,
    /// Minimum retry spacing: ACTIVE_LQ_IDLE_TIMEOUT by default.
    pub retry_min: Duration,
    /// Longest backoff.
    pub retry_max: Duration,
    /// Consecutive failed attempts before giving up; `None` = never.
    pub retries_max: Option<u32>,
    /// Largest message accepted.
    pub message_size_max: u16,
    /// Seconds subtracted from a saved base time when it becomes LQ_START_TIME again
    /// (changes the server had not yet sent when it was saved come again; still derived
    /// from server data, R-6). 0 = the base time itself.
    pub resume_margin_s: u32,
}

impl Settings {
    /// The RFC defaults (§5 of protocol.md) for `server` and `requestor`.
    pub fn new(server: SocketAddr, requestor: Vec<u8>) -> Self {
        Self {
            server,
            requestor,
            connect_timeout: Duration::from_secs(10),
            rcv_timeout: conn::ACTIVE_LQ_RCV_TIMEOUT,
            bulk_timeout: conn::BULK_LQ_DATA_TIMEOUT,
            retry_min: conn::ACTIVE_LQ_IDLE_TIMEOUT,
            retry_max: Duration::from_secs(600),
            retries_max: None,
            message_size_max: MESSAGE_SIZE_MAX,
            resume_margin_s: 0,
        }
    }

    /// The wait before attempt `failures + 1`: `retry_min` doubled per consecutive failure,
    /// capped at `retry_max`, never below `retry_min`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.retry_min
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
            .max(self.retry_min)
    }
}

/// A base time that may be saved, with what it belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Checkpoint<'a> {
    /// The BASE_TIME (server clock).
    pub base_time: u32,
    /// The server it came from.
    pub server_id: &'a [u8],
    /// Local Unix time when it arrived.
    pub local_unix: u64,
    /// Estimated skew, server minus local, seconds.
    pub skew_s: i64,
}

/// Something the loop reports that is not a binding.
#[derive(Debug)]
pub enum Notice<'a> {
    /// The REPLY accepted the Active query.
    Started {
        /// The server's DUID.
        server_id: &'a [u8],
        /// The LQ_START_TIME sent, if any.
        start_time: Option<u32>,
        /// BASE_TIME of the REPLY.
        base_time: Option<u32>,
    },
    /// Catch-up is over.
    CatchUpComplete {
        /// Its BASE_TIME.
        base_time: Option<u32>,
    },
    /// DataMissing: history did not reach `start_time` (S-54, S-55).
    DataMissing {
        /// The LQ_START_TIME that was sent.
        start_time: u32,
        /// The server's time of the DataMissing message.
        end_time: u32,
        /// Whether a Bulk recovery runs.
        recovering: bool,
    },
    /// The Bulk recovery finished; `bindings` came from it.
    RecoveryDone {
        /// Bindings received.
        bindings: u64,
    },
    /// A keepalive (D-5).
    Keepalive {
        /// Its BASE_TIME.
        base_time: Option<u32>,
    },
    /// A message was discarded.
    Discarded(&'static str),
    /// The connection failed; the next attempt comes after `retry_in`.
    Disconnected {
        /// Why.
        error: &'a RequestorError,
        /// The wait before reconnecting.
        retry_in: Duration,
        /// The LQ_START_TIME the next attempt sends.
        start_time: Option<u32>,
    },
}

/// Where bindings, checkpoints and notices go: standard output, a SQLite mirror.
pub trait Sink {
    /// A binding (and/or a checkpoint that may be saved together with it, in one
    /// transaction).
    fn apply(
        &mut self,
        binding: Option<&Binding>,
        origin: Origin,
        checkpoint: Option<Checkpoint<'_>>,
    ) -> Result<(), RequestorError>;

    /// A notice. An error stops [`follow`] (e.g. the server's DUID changed under a mirror).
    fn notice(&mut self, notice: &Notice<'_>) -> Result<(), RequestorError>;

    /// The local clock read when the next messages were received (R-33: local times are
    /// stored next to server times).
    fn set_local_unix(&mut self, local_unix: u64) {
        let _ = local_unix;
    }

    /// True when the loop should end (checked between reads).
    fn stop(&self) -> bool {
        false
    }
}

/// What a Bulk query returned besides its bindings.
#[derive(Clone, Debug, Default)]
pub struct BulkSummary {
    /// The server's DUID.
    pub server_id: Vec<u8>,
    /// LQ_BASE_TIME of the REPLY: the server's time when the answer started.
    pub reply_base_time: Option<u32>,
    /// Bindings received.
    pub bindings: u64,
}

/// Run one Bulk query on a new connection, handing each binding to `on_binding` as it
/// arrives (never collected: the memory is one message), and discarded messages to
/// `on_discard`.
pub fn run_bulk(
    settings: &Settings,
    xid: Xid,
    spec: &QuerySpec,
    window: (Option<u32>, Option<u32>),
    on_binding: &mut dyn FnMut(Binding) -> Result<(), RequestorError>,
    on_discard: &mut dyn FnMut(&'static str),
) -> Result<BulkSummary, RequestorError> {
    let mut bulk = Bulk::new(xid, &settings.requestor, spec.clone(), window.0, window.1);
    let mut conn = Conn::connect(
        settings.server,
        settings.connect_timeout,
        settings.message_size_max,
    )?;
    let mut frame = [0u8; QUERY_SIZE_MAX];
    let n = bulk.encode(&mut frame)?;
    conn.send(&frame[..n], settings.bulk_timeout)?;
    let mut summary = BulkSummary::default();
    while !bulk.is_finished() {
        // reply data stops arriving for BULK_LQ_DATA_TIMEOUT ⇒ give up.
        let step = match conn.receive(settings.bulk_timeout)? {
            Received::Message(m) => bulk.on_message(&m)?,
            Received::Nothing => {
                return Err(RequestorError::ReceiveTimeout {
                    timeout_s: settings.bulk_timeout.as_secs(),
                })
            }
            Received::Closed => {
                bulk.on_closed()?;
                break;
            }
        };
        if summary.reply_base_time.is_none() && bulk.server_id().is_some() {
            summary.reply_base_time = step.base_time;
        }
        if let Some(why) = step.discarded {
            on_discard(why);
        }
        if let Some(binding) = step.binding {
            on_binding(binding)?;
        }
    }
    summary.server_id = bulk.server_id().unwrap_or_default().to_vec();
    summary.bindings = bulk.bindings();
    // the requestor may close after its query.
    conn.close();
    Ok(summary)
}

/// What to do on DataMissing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Nothing: report it and go on.
    Off,
    /// a Bulk query with START_TIME = the one sent and END_TIME = the DataMissing's
    /// BASE_TIME, for the Active query's filter or all bindings (D-3).
    Window,
    /// A Bulk query for the whole current state (no time window). For a sink that must end
    /// equal to the server even for deletions the server has forgotten (its history
    /// horizon passed them, so a windowed query cannot report them): the sink drops what
    /// neither the recovery nor the stream confirmed (see `mirror`).
    Full,
}

/// What the recovery thread sends back.
enum FromRecovery {
    Binding(Binding),
    Done(Result<u64, RequestorError>),
}

/// Start the recovery: a Bulk query on a second connection with the Active query's
/// filter, or all bindings (D-3), over `window` or the whole state.
fn spawn_recovery(
    settings: &Settings,
    filter: Option<&QuerySpec>,
    window: (Option<u32>, Option<u32>),
    xid: Xid,
) -> Receiver<FromRecovery> {
    let (tx, rx) = bounded(RECOVERY_QUEUE_MAX);
    let settings = settings.clone();
    let spec = filter.cloned().unwrap_or_else(QuerySpec::all_bindings);
    std::thread::spawn(move || {
        let mut on_binding = |b: Binding| {
            tx.send(FromRecovery::Binding(b))
                .map_err(|_| RequestorError::Sink("the stream loop ended".into()))
        };
        let result = run_bulk(&settings, xid, &spec, window, &mut on_binding, &mut |_| {})
            .map(|s| s.bindings);
        let _ = tx.send(FromRecovery::Done(result));
    });
    rx
}

/// Follow an Active query with reconnects until the sink stops it or a failure that
/// retrying cannot fix or `retries_max` consecutive failures.
pub fn follow(
    settings: &Settings,
    filter: Option<&QuerySpec>,
    start_time: Option<u32>,
    recovery: Recovery,
    sink: &mut dyn Sink,
    clock: &dyn Clock,
) -> Result<(), RequestorError> {
    let mut session = Session {
        settings,
        filter,
        recovery,
        saved: start_time,
        from_checkpoint: false,
        skew: SkewEstimate::default(),
        xid: 0,
    };
    let mut failures = 0u32;
    loop {
        let retry_in = match session.run(sink, clock) {
            Ok(()) => return Ok(()),
            Err((error, started)) if error.is_retryable() => {
                if started {
                    failures = 0;
                }
                failures += 1;
                if settings.retries_max.is_some_and(|max| failures > max) {
                    return Err(error);
                }
                let retry_in = settings.backoff(failures);
                sink.notice(&Notice::Disconnected {
                    error: &error,
                    retry_in,
                    start_time: session.next_start(),
                })?;
                retry_in
            }
            Err((error, _)) => return Err(error),
        };
        sleep_unless_stopped(retry_in, sink);
        if sink.stop() {
            return Ok(());
        }
    }
}

fn sleep_unless_stopped(total: Duration, sink: &dyn Sink) {
    let mut left = total;
    while !left.is_zero() && !sink.stop() {
        let step = left.min(READ_SLICE);
        std::thread::sleep(step);
        left -= step;
    }
}

/// The state that outlives one connection.
struct Session<'s> {
    settings: &'s Settings,
    filter: Option<&'s QuerySpec>,
    recovery: Recovery,
    /// The last saved base time: the next LQ_START_TIME.
    saved: Option<u32>,
    /// `saved` came from a checkpoint (not from the caller): the resume margin applies.
    from_checkpoint: bool,
    skew: SkewEstimate,
    xid: u32,
}

impl Session<'_> {
    /// The LQ_START_TIME of the next connection.
    fn next_start(&self) -> Option<u32> {
        let margin = if self.from_checkpoint {
            self.settings.resume_margin_s
        } else {
            0
        };
        self.saved.map(|s| s.wrapping_sub(margin))
    }

    /// Record a base time that may be saved.
    fn save(&mut self, base_time: u32) {
        self.saved = Some(base_time);
        self.from_checkpoint = true;
    }

    fn next_xid(&mut self) -> Xid {
        // unique per connection; a new connection per query makes a counter enough.
        self.xid = (self.xid % Xid::MAX) + 1;
        Xid::new(self.xid).unwrap_or_else(|| unreachable!("below 2^24"))
    }

    /// One connection. `Err((error, started))`: `started` when the REPLY had arrived.
    fn run(
        &mut self,
        sink: &mut dyn Sink,
        clock: &dyn Clock,
    ) -> Result<(), (RequestorError, bool)> {
        let start_time = self.next_start();
        let mut active = Active::new(
            self.next_xid(),
            &self.settings.requestor,
            self.filter.cloned(),
            start_time,
        );
        let mut conn = Conn::connect(
            self.settings.server,
            self.settings.connect_timeout,
            self.settings.message_size_max,
        )
        .map_err(|e| (e, false))?;
        let mut frame = [0u8; QUERY_SIZE_MAX];
        let n = active.encode(&mut frame).map_err(|e| (e, false))?;
        conn.send(&frame[..n], self.settings.bulk_timeout)
            .map_err(|e| (e, false))?;
        let mut stream = Stream {
            active: &mut active,
            start_time,
            recovery: None,
            recovered: 0,
        };
        let result = self.stream(&mut conn, &mut stream, sink, clock);
        let started = stream.active.server_id().is_some();
        conn.close();
        result.map_err(|e| (e, started))
    }

    fn stream(
        &mut self,
        conn: &mut Conn,
        stream: &mut Stream<'_>,
        sink: &mut dyn Sink,
        clock: &dyn Clock,
    ) -> Result<(), RequestorError> {
        let mut last_rx = clock.monotonic();
        loop {
            if sink.stop() {
                return Ok(());
            }
            self.drain_recovery(stream, sink, clock)?;
            let message = match conn.receive(READ_SLICE)? {
                Received::Message(m) => m,
                Received::Nothing => {
                    // any message resets the timer; none for the timeout ⇒ close.
                    if clock.monotonic().duration_since(last_rx) >= self.settings.rcv_timeout {
                        return Err(RequestorError::ReceiveTimeout {
                            timeout_s: self.settings.rcv_timeout.as_secs(),
                        });
                    }
                    continue;
                }
                Received::Closed => {
                    return Err(RequestorError::Closed {
                        waiting_for: "the next message of the Active query",
                    })
                }
            };
            last_rx = clock.monotonic();
            let output = stream.active.on_message(&message)?;
            let local_unix = clock.unix_now();
            sink.set_local_unix(local_unix);
            if let Some(base) = output.base_time {
                self.skew.sample(base, local_unix);
            }
            let server_id = stream.active.server_id().unwrap_or_default().to_vec();
            let checkpoint = output.checkpoint.map(|base_time| Checkpoint {
                base_time,
                server_id: &server_id,
                local_unix,
                skew_s: self.skew.seconds(),
            });
            if let Some(cp) = checkpoint {
                self.save(cp.base_time);
            }
            self.on_event(output.event, output.base_time, checkpoint, stream, sink)?;
        }
    }

    fn on_event(
        &mut self,
        event: Event,
        base_time: Option<u32>,
        checkpoint: Option<Checkpoint<'_>>,
        stream: &mut Stream<'_>,
        sink: &mut dyn Sink,
    ) -> Result<(), RequestorError> {
        match event {
            Event::Started {
                server_id,
                catch_up,
                first,
            } => {
                sink.notice(&Notice::Started {
                    server_id: &server_id,
                    start_time: stream.start_time,
                    base_time,
                })?;
                if let Some(binding) = first {
                    let origin = if catch_up {
                        Origin::CatchUp
                    } else {
                        Origin::Live
                    };
                    return sink.apply(Some(&binding), origin, checkpoint);
                }
            }
            Event::Binding { binding, catch_up } => {
                let origin = if catch_up {
                    Origin::CatchUp
                } else {
                    Origin::Live
                };
                return sink.apply(Some(&binding), origin, checkpoint);
            }
            Event::CatchUpComplete => sink.notice(&Notice::CatchUpComplete { base_time })?,
            Event::DataMissing {
                start_time,
                end_time,
            } => {
                sink.notice(&Notice::DataMissing {
                    start_time,
                    end_time,
                    recovering: self.recovery != Recovery::Off,
                })?;
                let window = match self.recovery {
                    Recovery::Off => None,
                    Recovery::Window => Some((Some(start_time), Some(end_time))),
                    Recovery::Full => Some((None, None)),
                };
                if let Some(window) = window {
                    let xid = self.next_xid();
                    stream.recovery = Some(spawn_recovery(self.settings, self.filter, window, xid));
                    stream.recovered = 0;
                } else if let Some(base) = stream.active.recovery_done() {
                    self.save(base);
                }
            }
            Event::Keepalive => sink.notice(&Notice::Keepalive { base_time })?,
            Event::Discarded(why) => sink.notice(&Notice::Discarded(why))?,
        }
        if checkpoint.is_some() {
            sink.apply(None, Origin::Live, checkpoint)?;
        }
        Ok(())
    }

    fn drain_recovery(
        &mut self,
        stream: &mut Stream<'_>,
        sink: &mut dyn Sink,
        clock: &dyn Clock,
    ) -> Result<(), RequestorError> {
        let Some(rx) = &stream.recovery else {
            return Ok(());
        };
        loop {
            match rx.try_recv() {
                Ok(FromRecovery::Binding(binding)) => {
                    stream.recovered += 1;
                    sink.set_local_unix(clock.unix_now());
                    sink.apply(Some(&binding), Origin::Recovery, None)?;
                }
                Ok(FromRecovery::Done(result)) => {
                    let bindings = result?;
                    stream.recovery = None;
                    sink.notice(&Notice::RecoveryDone { bindings })?;
                    if let Some(base_time) = stream.active.recovery_done() {
                        self.save(base_time);
                        let server_id = stream.active.server_id().unwrap_or_default().to_vec();
                        let checkpoint = Checkpoint {
                            base_time,
                            server_id: &server_id,
                            local_unix: clock.unix_now(),
                            skew_s: self.skew.seconds(),
                        };
                        sink.apply(None, Origin::Recovery, Some(checkpoint))?;
                    }
                    return Ok(());
                }
                Err(TryRecvError::Empty) => return Ok(()),
                Err(TryRecvError::Disconnected) => {
                    return Err(RequestorError::Protocol(
                        "the recovery thread ended without a result".into(),
                    ))
                }
            }
        }
    }
}

/// The state of one connection.
struct Stream<'a> {
    active: &'a mut Active,
    /// The LQ_START_TIME this connection sent.
    start_time: Option<u32>,
    recovery: Option<Receiver<FromRecovery>>,
    recovered: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_starts_at_retry_min_doubles_and_is_capped_r11() {
        let mut s = Settings::new(([127, 0, 0, 1], 547).into(), vec![0, 3, 0, 1, 1]);
        assert_eq!(
            s.retry_min,
            Duration::from_secs(60),
            "ACTIVE_LQ_IDLE_TIMEOUT"
        );
        assert_eq!(
            s.rcv_timeout,
            Duration::from_secs(120),
            "ACTIVE_LQ_RCV_TIMEOUT"
        );
        let waits: Vec<u64> = (1..=6).map(|f| s.backoff(f).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 480, 600, 600]);
        s.retry_min = Duration::from_secs(1);
        s.retry_max = Duration::from_secs(2);
        assert_eq!(s.backoff(1), Duration::from_secs(1));
        assert_eq!(s.backoff(30), Duration::from_secs(2));
    }
}
