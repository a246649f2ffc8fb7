use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cbam_conformance::cli::Cli::parse();
    ExitCode::from(cbam_conformance::cli::dispatch(cli))
}
