use std::process::ExitCode;

use cbam_api_double::config::Config;
use cbam_api_double::server::serve;

fn report(context: &str, err: &dyn std::error::Error) {
    let text = cbam_error_chain::render(err);
    let line = serde_json::json!({ "level": "ERROR", "msg": context, "error": text });
    println!("{line}");
}

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            report("invalid configuration", &err);
            return ExitCode::from(2);
        }
    };
    // Two workers: the pods get 1-2 CPUs; pipeline runs use the blocking pool.
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(rt) => rt,
        Err(err) => {
            report("cannot start runtime", &err);
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            report("server stopped", &err);
            ExitCode::from(1)
        }
    }
}
