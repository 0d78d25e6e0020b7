//! chaos-inference: parse, set up telemetry, run. Everything else is in the library.

use std::process::ExitCode;

use chaos_inference::cli::{self, Command};
use chaos_inference::startup::{self, EXIT_CONFIG};
use chaos_inference::{probe, telemetry};

fn main() -> ExitCode {
    // Monotonic start, taken first: every chaos time counts from here.
    let started = tokio::time::Instant::now();
    disable_onnx_runtime_telemetry();
    let cli = match cli::parse_from(std::env::args().collect()) {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    match cli.command {
        Command::Profiles => {
            print!("{}", cli::list_profiles());
            ExitCode::SUCCESS
        }
        Command::Plan(args) => match args.plan() {
            Ok(plan) => {
                print!("{}", plan.render(args.repeats));
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Timeline(args) => match args.run() {
            Ok(text) => {
                print!("{text}");
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Record(args) => match chaos_inference::record::run(&args) {
            Ok(text) => {
                match &args.out {
                    Some(out) => eprintln!("record: wrote {out}"),
                    None => print!("{text}"),
                }
                ExitCode::SUCCESS
            }
            Err(e) => config_error(&e),
        },
        Command::Probe(args) => match probe::run(&args) {
            Ok(status) => {
                println!("{status}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        },
        Command::Simulate(args) => match chaos_inference::simulate::command::run(&args) {
            Ok((report, code)) => {
                print!("{report}");
                ExitCode::from(code)
            }
            Err(e) => config_error(&e),
        },
        Command::Tune(args) => match chaos_inference::simulate::tune::command::run(&args) {
            Ok((report, code)) => {
                print!("{report}");
                ExitCode::from(code)
            }
            Err(e) => config_error(&e),
        },
        Command::Load(args) => match chaos_inference::load::run(&args) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => config_error(&e),
        },
        Command::Serve(args) => serve(*args, started),
    }
}

fn serve(args: chaos_inference::config::ServeArgs, started: tokio::time::Instant) -> ExitCode {
    telemetry::init(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        // The chaos timers, the loader, signals and the gRPC server; HTTP has threads of its own.
        .worker_threads(args.http_workers())
        .thread_name("chaos-inference-main")
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("chaos-inference: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let prepared = match runtime.block_on(async { startup::prepare(args) }) {
        Ok(prepared) => prepared,
        Err(e) => return config_error(&e.0),
    };
    match runtime.block_on(startup::run(prepared, started)) {
        Ok(code) => {
            // Inference threads and blocked workers must not keep the process alive.
            runtime.shutdown_timeout(std::time::Duration::from_millis(100));
            ExitCode::from(code)
        }
        Err(e) => {
            eprintln!("chaos-inference: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// One line on stderr and exit code 2: what is wrong and what is expected.
fn config_error(message: &str) -> ExitCode {
    eprintln!("chaos-inference: {message}");
    ExitCode::from(EXIT_CONFIG)
}

fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            ExitCode::SUCCESS
        }
        _ => {
            // clap's message spans lines (usage, hints); the first names the variable and form.
            let rendered = e.render().to_string();
            let line = rendered
                .lines()
                .next()
                .unwrap_or("invalid arguments")
                .trim_start_matches("error: ");
            config_error(line)
        }
    }
}

/// ONNX Runtime's Linux builds keep a device id and an event database under
/// `$XDG_CACHE_HOME` or `$HOME/.cache` even with telemetry events off (`with_telemetry(false)`
/// in the library), and warn at every start where that folder cannot be written (a read-only
/// root, `HOME=/`). `ORT_DISABLE_TELEMETRY=1` stops both; a value the user set is kept.
fn disable_onnx_runtime_telemetry() {
    if std::env::var_os("ORT_DISABLE_TELEMETRY").is_none() {
        // SAFETY: called first in main, before any thread exists that could read the environment.
        unsafe { std::env::set_var("ORT_DISABLE_TELEMETRY", "1") };
    }
}
