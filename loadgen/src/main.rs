//! `lq-loadgen`: load generation and baselines for lqd.
//!
//! This build has the first baseline of the benchmark suite: `lq-loadgen rtt`, the loopback
//! TCP round-trip time of a framed leasequery message, against which lqd's delivery latency
//! is reported as a ratio. Churn injection and Active requestor fleets are added with the
//! server.

mod rtt;

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
    /// Loopback TCP round-trip of one framed LEASEQUERY-DATA (the latency baseline).
    Rtt(rtt::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Rtt(args) => {
            let report = rtt::run(&args)?;
            print!("{report}");
            Ok(())
        }
    }
}
