use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // `conformance cluster ACTION`: its own parser, so the verdict's
    // positional ENV stays what the rest of the command line is about.
    let mut argv = std::env::args_os();
    let program = argv.next().unwrap_or_default();
    let rest: Vec<_> = argv.collect();
    if rest.first().is_some_and(|first| first == "cluster") {
        let args = cbam_conformance::cluster_command::ClusterArgs::parse_from(
            std::iter::once(program).chain(rest.into_iter().skip(1)),
        );
        return ExitCode::from(cbam_conformance::cluster_command::run(&args));
    }
    let args = cbam_conformance::cli::Args::parse();
    ExitCode::from(cbam_conformance::cli::run(args))
}
