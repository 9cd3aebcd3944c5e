//! `cargo xtask`: developer and CI tasks for the Gantry workspace.
//!
//! Run through the cargo alias in `.cargo/config.toml` (`cargo xtask <command>`):
//!
//! - `test`: install missing prerequisites, build the binaries, run the whole test suite ([`test`]);
//! - `up`: start a local cluster (3 control-plane replicas, containerd and a node agent) in the
//!   background and print how to use it ([`up`], [`node`]);
//! - `down`: stop that cluster, optionally deleting its data ([`down`]);
//! - `gen-proto-schema`: regenerate the Kubernetes protobuf schema table ([`proto_schema`]).
//!
//! Shared pieces: the on-disk description of a local cluster ([`cluster`]) and small process, port and
//! cargo helpers ([`util`]).

mod cluster;
mod down;
mod node;
mod proto_schema;
mod test;
mod up;
mod util;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Developer and CI tasks for Gantry.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install missing prerequisites, build the workspace binaries and run the whole test suite.
    Test(test::Args),
    /// Start a local cluster (3 control-plane replicas and a node on containerd) in the background and print how to use it.
    Up(up::Args),
    /// Stop the local cluster started by `cargo xtask up`.
    Down(down::Args),
    /// Regenerate control-plane/src/api/protobuf/schema.rs from the k8s-pb and k8s-openapi sources.
    GenProtoSchema(proto_schema::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test(args) => test::run(args),
        Command::Up(args) => up::run(args).map(|()| ExitCode::SUCCESS),
        Command::Down(args) => down::run(args).map(|()| ExitCode::SUCCESS),
        Command::GenProtoSchema(args) => proto_schema::run(args).map(|()| ExitCode::SUCCESS),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
