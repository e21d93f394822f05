//! `lq-loadgen`: load generation and baselines for lqd.
//!
//! - `lq-loadgen run`: the benchmark. Open-loop binding changes appended to the Kea journal
//!   lqd tails, N Active requestors (optional mixes: link and relay-id filters, readers that
//!   stop, periodic reconnects with catch-up), latency from each change's scheduled write
//!   to its receipt, missing/duplicate/out-of-order counts, and two baselines in the same
//!   run: the loopback round trip and a minimal pump over the same number of sockets.
//!   `--spawn` starts lqd itself with a temporary directory and an embedded configuration.
//! - `lq-loadgen rtt`: the loopback TCP round-trip baseline alone.

mod conn;
mod fleet;
mod inject;
mod observe;
mod parts;
mod population;
mod progress;
mod pump;
mod report;
mod rtt;
mod run;
mod spawn;
mod stats;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "lq-loadgen",
    version,
    about = "Load generator and baselines for lqd"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A whole benchmark: changes into the Kea journal, N Active requestors, baselines.
    Run(Box<run::Args>),
    /// Loopback TCP round-trip of one framed LEASEQUERY-DATA (the latency baseline).
    Rtt(rtt::Args),
    /// One process of a fleet spread over processes (started by `run`).
    #[command(hide = true)]
    FleetPart(Box<parts::PartArgs>),
    /// One process of the pump baseline spread over processes (started by `run`).
    #[command(hide = true)]
    PumpPart(parts::PumpPartArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run(args) => {
            let report = run::run(&args)?;
            print!("{report}");
            if let Some(path) = &args.json {
                let text = serde_json::to_string_pretty(&report.to_json())?;
                std::fs::write(path, text + "\n")
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(())
        }
        Command::FleetPart(args) => parts::run_part(&args),
        Command::PumpPart(args) => parts::run_pump_part(&args),
        Command::Rtt(args) => {
            let report = rtt::run(&args)?;
            print!("{report}");
            Ok(())
        }
    }
}
