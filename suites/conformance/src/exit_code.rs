//! The process's exit codes beside the verdicts they stand for.

use cbam_report::report::Verdict;

/// Usage, input or environment error (clap uses the same code for usage).
pub const EXIT_ERROR: u8 = 2;

/// Every exit code with its `summary.json` status, as the README's table has them.
pub fn exit_codes() -> [(u8, &'static str); 4] {
    let status = |v: Verdict| match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Incomplete => "incomplete",
    };
    let code = |v: Verdict| (v.exit_code(), status(v));
    [code(Verdict::Pass), code(Verdict::Fail), (EXIT_ERROR, "error"), code(Verdict::Incomplete)]
}
