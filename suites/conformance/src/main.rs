use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cbam_conformance::cli::Args::parse();
    ExitCode::from(cbam_conformance::cli::run(args))
}
