//! `lq`, the leasequery requestor CLI (protocol.md §3(b)).
//!
//! - `lq bulk`: one Bulk Leasequery (RFC 5460) of any query type, bindings as JSON lines or
//!   a table.
//! - `lq follow`: an Active Leasequery (RFC 7653), changes as JSON lines, reconnecting with
//!   the last saved base time and recovering DataMissing gaps by Bulk.
//! - `lq mirror --db FILE`: a SQLite copy of the server's bindings that survives restarts.
//! - `lq decode`: validate framed messages given as hex and print each as an option tree.

use std::io::{Read, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand, ValueEnum};
use lqd::requestor::binding::Binding;
use lqd::requestor::follow::{self, Checkpoint, Notice, Settings, Sink};
use lqd::requestor::mirror::{self, MirrorOptions};
use lqd::requestor::output::{self, Origin};
use lqd::requestor::spec::{parse_duid, QuerySpec};
use lqd::requestor::{conn, time, Clock, RequestorError};
use lqd::wire::{FrameDecoder, Message, Xid, MESSAGE_SIZE_MAX};

/// lq's DUID unless `--duid` says otherwise: DUID-EN, enterprise 32473 (RFC 5612, for
/// documentation), identifier "lq".
const DEFAULT_DUID: [u8; 8] = [0, 2, 0, 0, 0x7e, 0xd9, b'l', b'q'];

/// DHCPv6 leasequery requestor: Bulk (RFC 5460) and Active (RFC 7653) Leasequery.
#[derive(Parser, Debug)]
#[command(name = "lq", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One Bulk Leasequery; prints the bindings.
    Bulk(BulkArgs),
    /// An Active Leasequery; prints binding changes as JSON lines, reconnecting as needed.
    Follow(FollowArgs),
    /// Keep a SQLite database equal to the server's bindings (Bulk, then Active).
    Mirror(MirrorArgs),
    /// Decode TCP-framed messages given as hex (standard input when no argument).
    Decode {
        /// Hex octets; whitespace is ignored.
        hex: Vec<String>,
    },
}

#[derive(Args, Debug)]
struct Common {
    /// The server: host, host:port, [v6]:port or a bare IPv6 address; port 547 by default.
    #[arg(short, long)]
    server: String,
    /// lq's own DUID in hex (CLIENTID of its queries).
    #[arg(long)]
    duid: Option<String>,
    /// Connect timeout, seconds.
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// Largest message accepted from the server, octets.
    #[arg(long, default_value_t = MESSAGE_SIZE_MAX)]
    message_size_max: u16,
    /// BULK_LQ_DATA_TIMEOUT: longest wait for Bulk data or to send a query, seconds.
    #[arg(long, default_value_t = 300)]
    bulk_timeout: u64,
}

#[derive(Args, Debug)]
struct Timers {
    /// Minimum wait before reconnecting, seconds (R-11: ACTIVE_LQ_IDLE_TIMEOUT, 60).
    #[arg(long, default_value_t = 60)]
    retry_min: u64,
    /// Longest wait before reconnecting, seconds (the backoff doubles up to this).
    #[arg(long, default_value_t = 600)]
    retry_max: u64,
    /// ACTIVE_LQ_RCV_TIMEOUT: close after this long without a message, seconds.
    #[arg(long, default_value_t = 120)]
    rcv_timeout: u64,
    /// Give up after this many consecutive failed attempts (default: never).
    #[arg(long)]
    retries_max: Option<u32>,
    /// Reconnect this many seconds before the last saved base time (lq mirror: 2).
    #[arg(long)]
    resume_margin: Option<u32>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    Json,
    Table,
}

#[derive(Args, Debug)]
struct BulkArgs {
    #[command(flatten)]
    common: Common,
    /// address | client-id | relay-id | link-address | remote-id.
    query_type: String,
    /// The key: an IPv6 address, a DUID in hex, a link-address (default ::, all bindings)
    /// or ENTERPRISE:HEX for remote-id.
    value: Option<String>,
    /// Link-address of the query (types other than link-address).
    #[arg(long)]
    link: Option<Ipv6Addr>,
    /// Ask for relay data (OPTION_LQ_RELAY_DATA) in each binding.
    #[arg(long)]
    relay_data: bool,
    /// LQ_START_TIME: server time (seconds since 2000) or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    start: Option<String>,
    /// LQ_END_TIME: server time (seconds since 2000) or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    end: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
}

#[derive(Args, Debug)]
struct FollowArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    timers: Timers,
    /// Optional filter: address | client-id | relay-id | link-address | remote-id.
    query_type: Option<String>,
    /// The filter's key.
    value: Option<String>,
    /// Link-address of the filter.
    #[arg(long)]
    link: Option<Ipv6Addr>,
    /// Ask for relay data (OPTION_LQ_RELAY_DATA) in each binding (needs a filter).
    #[arg(long)]
    relay_data: bool,
    /// Catch up from this time (LQ_START_TIME): server time or YYYY-MM-DDTHH:MM:SSZ.
    #[arg(long)]
    start: Option<String>,
    /// On DataMissing, do not run the Bulk recovery of R-32.
    #[arg(long)]
    no_recovery: bool,
    /// Exit after this many bindings.
    #[arg(long)]
    count: Option<u64>,
    /// Print keepalives too.
    #[arg(long)]
    keepalives: bool,
}

#[derive(Args, Debug)]
struct MirrorArgs {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    timers: Timers,
    /// The SQLite database.
    #[arg(long)]
    db: PathBuf,
    /// Print every binding and notice as JSON lines.
    #[arg(short, long)]
    verbose: bool,
}

/// The system clock.
struct SystemClock;

impl Clock for SystemClock {
    fn unix_now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

fn settings(common: &Common, timers: Option<&Timers>) -> Result<Settings, RequestorError> {
    let server = conn::resolve(&common.server)?;
    let duid = match &common.duid {
        Some(text) => parse_duid(text).map_err(RequestorError::Query)?,
        None => DEFAULT_DUID.to_vec(),
    };
    let mut s = Settings::new(server, duid);
    s.connect_timeout = Duration::from_secs(common.connect_timeout);
    s.bulk_timeout = Duration::from_secs(common.bulk_timeout);
    s.message_size_max = common.message_size_max;
    if let Some(t) = timers {
        if t.retry_min < 60 {
            eprintln!(
                "lq: warning: --retry-min {} is below ACTIVE_LQ_IDLE_TIMEOUT (60 s, R-11)",
                t.retry_min
            );
        }
        s.retry_min = Duration::from_secs(t.retry_min);
        s.retry_max = Duration::from_secs(t.retry_max.max(t.retry_min));
        s.rcv_timeout = Duration::from_secs(t.rcv_timeout);
        s.retries_max = t.retries_max;
        s.resume_margin_s = t.resume_margin.unwrap_or(0);
    }
    Ok(s)
}

fn parse_time_arg(text: Option<&String>) -> Result<Option<u32>, RequestorError> {
    text.map(|t| time::parse_time(t).map_err(RequestorError::Query))
        .transpose()
}

fn emit(line: &str) -> Result<(), RequestorError> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|e| RequestorError::Sink(format!("standard output: {e}")))
}

fn bulk(args: &BulkArgs) -> Result<(), RequestorError> {
    let settings = settings(&args.common, None)?;
    let mut spec = QuerySpec::parse(&args.query_type, args.value.as_deref(), args.link)
        .map_err(RequestorError::Query)?;
    spec.relay_data = args.relay_data;
    let window = (
        parse_time_arg(args.start.as_ref())?,
        parse_time_arg(args.end.as_ref())?,
    );
    let format = args.format;
    // The table header comes with the first binding, so that a failure prints only its
    // message.
    let mut header_due = matches!(format, Format::Table);
    let mut on_binding = |b: Binding| match format {
        Format::Json => emit(&output::binding_json(&b, Origin::Bulk).to_string()),
        Format::Table => {
            if std::mem::take(&mut header_due) {
                emit(output::TABLE_HEADER)?;
            }
            output::binding_rows(&b).iter().try_for_each(|r| emit(r))
        }
    };
    let xid = Xid::new(0x4c51).unwrap_or_else(|| unreachable!("24-bit"));
    let summary = follow::run_bulk(&settings, xid, &spec, window, &mut on_binding, &mut |why| {
        eprintln!("lq: discarded a message: {why}")
    })?;
    let base = summary.reply_base_time.map_or_else(String::new, |b| {
        format!(", server time {b} ({})", time::server_to_utc(b))
    });
    eprintln!(
        "lq: {} binding(s) from server {} ({}){base}",
        summary.bindings,
        output::hex(&summary.server_id),
        output::duid_type_name(&summary.server_id)
    );
    Ok(())
}

/// `lq follow`'s sink: JSON lines on standard output.
struct Printer {
    count: Option<u64>,
    printed: u64,
    keepalives: bool,
}

impl Sink for Printer {
    fn apply(
        &mut self,
        binding: Option<&Binding>,
        origin: Origin,
        _checkpoint: Option<Checkpoint<'_>>,
    ) -> Result<(), RequestorError> {
        if let Some(b) = binding {
            self.printed += 1;
            emit(&output::binding_json(b, origin).to_string())?;
        }
        Ok(())
    }

    fn notice(&mut self, notice: &Notice<'_>) -> Result<(), RequestorError> {
        let value = match notice {
            Notice::Keepalive { base_time } if self.keepalives => serde_json::json!({
                "type": "keepalive",
                "base_time": base_time.map_or(serde_json::Value::Null, output::time_json),
            }),
            other => match mirror::notice_json(other) {
                Some(v) => v,
                None => return Ok(()),
            },
        };
        emit(&value.to_string())
    }

    fn stop(&self) -> bool {
        self.count.is_some_and(|c| self.printed >= c)
    }
}

fn follow_cmd(args: &FollowArgs) -> Result<(), RequestorError> {
    let settings = settings(&args.common, Some(&args.timers))?;
    let filter = args
        .query_type
        .as_deref()
        .map(|kind| QuerySpec::parse(kind, args.value.as_deref(), args.link))
        .transpose()
        .map_err(RequestorError::Query)?
        .map(|mut spec| {
            spec.relay_data = args.relay_data;
            spec
        });
    if args.relay_data && filter.is_none() {
        return Err(RequestorError::Query(
            "--relay-data needs a filter; use link-address :: for all bindings".into(),
        ));
    }
    let start = parse_time_arg(args.start.as_ref())?;
    let mut printer = Printer {
        count: args.count,
        printed: 0,
        keepalives: args.keepalives,
    };
    follow::follow(
        &settings,
        filter.as_ref(),
        start,
        if args.no_recovery {
            follow::Recovery::Off
        } else {
            follow::Recovery::Window
        },
        &mut printer,
        &SystemClock,
    )
}

fn mirror_cmd(args: &MirrorArgs) -> Result<(), RequestorError> {
    let settings = settings(&args.common, Some(&args.timers))?;
    let options = MirrorOptions {
        resume_margin_s: args.timers.resume_margin.unwrap_or(2),
        verbose: args.verbose,
    };
    mirror::run(&args.db, &settings, &options, &SystemClock)
}

fn parse_hex(text: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = text.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", digits.len()));
    }
    digits
        .chunks_exact(2)
        .enumerate()
        .map(|(i, pair)| {
            let pair = std::str::from_utf8(pair).map_err(|_| format!("non-ASCII at octet {i}"))?;
            u8::from_str_radix(pair, 16).map_err(|_| format!("bad hex {pair:?} at octet {i}"))
        })
        .collect()
}

fn decode(text: &str) -> Result<(), String> {
    let bytes = parse_hex(text)?;
    let mut decoder = FrameDecoder::new(MESSAGE_SIZE_MAX);
    let mut offset = 0;
    let mut frames = 0usize;
    while offset < bytes.len() {
        offset += decoder.extend(&bytes[offset..]);
        while let Some(frame) = decoder.next_frame().map_err(|e| format!("framing: {e}"))? {
            frames += 1;
            let message = Message::parse(frame).map_err(|e| format!("frame {frames}: {e}"))?;
            print!("{message}");
        }
    }
    if decoder.buffered() > 0 {
        return Err(format!(
            "{} octets of an incomplete frame at the end",
            decoder.buffered()
        ));
    }
    Ok(())
}

fn decode_cmd(hex: &[String]) -> Result<(), String> {
    if hex.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("reading standard input: {e}"))?;
        decode(&text)
    } else {
        decode(&hex.join(""))
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Decode { hex } => decode_cmd(hex),
        Command::Bulk(args) => bulk(args).map_err(|e| e.to_string()),
        Command::Follow(args) => follow_cmd(args).map_err(|e| e.to_string()),
        Command::Mirror(args) => mirror_cmd(args).map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lq: {message}");
            ExitCode::FAILURE
        }
    }
}
