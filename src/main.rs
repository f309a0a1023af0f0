//! The `lagom` command line: a thin layer that loads the configuration and starts a tool or role.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};

use lagom::config::{self, CliOverrides, Config, ConfigError};
use lagom::logging::{init_logging, LogFormat};
use lagom::run::RunDir;

/// Distributed training for heterogeneous clusters.
#[derive(Parser, Debug)]
#[command(name = "lagom", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Run a node of a cluster: `server`, `worker`, `supervisor`, or `local` (server + supervisor
    /// + workers on loopback).
    #[arg(long, value_enum)]
    role: Option<RoleName>,
    #[command(flatten)]
    overrides: CliOverrides,
    /// Log lines on standard error as `text` (colours only on a terminal) or `json` (one object
    /// per line, for log collectors). Worker processes a supervisor starts log the same way.
    #[arg(
        long,
        value_enum,
        global = true,
        env = lagom::logging::LOG_FORMAT_ENV,
        default_value = "text"
    )]
    log_format: LogFormat,
    /// Log level (`error`, `warn`, `info`, `debug`, `trace`) or filter directives such as
    /// `info,lagom::net=debug`; without it, `RUST_LOG`, else `info`.
    #[arg(long, global = true, env = lagom::logging::LOG_LEVEL_ENV, value_name = "LEVEL")]
    log_level: Option<String>,
}

/// The node roles.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
enum RoleName {
    /// The parameter server (listens on `net.listen`).
    Server,
    /// One worker (slot `net.worker`) of the server at `net.server`.
    Worker,
    /// A server in this process and a supervisor running `cluster.workers` worker processes.
    Local,
    /// This host's workers (`[supervisor]`) as child processes, restarted when they die.
    Supervisor,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Simulate K workers against the parameter server, or K decentralized nodes, on an analytic
    /// objective or a real model (virtual clock).
    Sim(RunArgs),
    /// Run a grid of simulations (or trainings) from a grid file, resumably, and write
    /// results.csv and table.md.
    Sweep(SweepArgs),
    /// Draw charts (SVG and PNG) of finished runs, overlaid, and of sweeps.
    Report(ReportArgs),
    /// Train one model in this process (the single-node baseline of a cluster run).
    Train(RunArgs),
    /// Time training steps of the configured model, batch size, device and threads on random data.
    Bench(BenchArgs),
    /// Create a cluster CA and a certificate + key per node (server and worker hosts).
    Certs(CertsArgs),
    /// Print the merged configuration (defaults < file < LAGOM_* environment < flags) as TOML.
    Config(ConfigArgs),
    /// Evaluate a saved model (`model.safetensors` of a run) on the configured data set's test
    /// set, with the running statistics it holds.
    Eval(EvalArgs),
    /// Print a shell completion script: `lagom completions bash > /etc/bash_completion.d/lagom`
    /// (also zsh, fish, elvish, powershell).
    Completions(CompletionsArgs),
    /// Print lagom's manual page (roff): `lagom man > /usr/local/share/man/man1/lagom.1`.
    Man,
}

#[derive(Args, Debug)]
struct EvalArgs {
    #[command(flatten)]
    overrides: CliOverrides,
    /// The model file (safetensors, as runs write it).
    #[arg(long, value_name = "FILE")]
    model: std::path::PathBuf,
}

#[derive(Args, Debug)]
struct SweepArgs {
    /// The grid file (TOML: base, axes, variants, tune; see docs/experiments.md).
    #[arg(long, value_name = "FILE")]
    config: std::path::PathBuf,
    /// The sweep directory (default: runs/sweep-<grid file name>).
    #[arg(long, value_name = "DIR")]
    out: Option<std::path::PathBuf>,
    /// Runs at a time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// CPU threads per run (default: the machine's CPUs divided by --jobs).
    #[arg(long)]
    threads: Option<usize>,
    /// No progress bar or progress log lines.
    #[arg(long)]
    quiet: bool,
    /// A key for every run, over the base file and under the grid's axes, e.g.
    /// `--set sim.updates=200` for a shorter rehearsal (repeatable; part of each run's identity).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Check every run's configuration and list the runs (identity, axis values, whether an
    /// earlier invocation finished it); run nothing.
    #[arg(long)]
    dry_run: bool,
}

#[derive(Args, Debug)]
struct ReportArgs {
    /// Run directories (overlaid in every chart) and sweep directories.
    #[arg(required = true, value_name = "RUN_DIR|SWEEP_DIR")]
    dirs: Vec<std::path::PathBuf>,
    /// Where the charts go.
    #[arg(long, value_name = "DIR", default_value = "report")]
    out: std::path::PathBuf,
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell the script is for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    overrides: CliOverrides,
    /// Never draw a progress bar or progress log lines.
    #[arg(long)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    #[command(flatten)]
    overrides: CliOverrides,
    /// Timed steps (after one untimed warm-up step).
    #[arg(long, default_value_t = 6)]
    steps: usize,
    /// After timing, compute one gradient on this device too (`cpu`, `cuda:N`) and compare it
    /// with the configured device's; exits 1 when they differ by more than --tolerance.
    #[arg(long, value_name = "DEVICE")]
    compare_with: Option<lagom::compute::DeviceSpec>,
    /// Largest relative L2 distance (and relative loss difference) --compare-with accepts. Two
    /// correct f32 implementations differ by about 1e-3 on ResNet-20 at batch 128 (lagom's CPU
    /// kernels against candle's: 8.9e-4; an H200 against the CPU: 1.03e-3).
    #[arg(long, default_value_t = 3e-3, requires = "compare_with")]
    tolerance: f64,
}

#[derive(Args, Debug)]
struct CertsArgs {
    /// Directory for ca.pem, ca.key and NAME.pem/NAME.key per node (created; never overwritten).
    #[arg(long, value_name = "DIR")]
    dir: std::path::PathBuf,
    /// The server node's name.
    #[arg(long, value_name = "NAME", default_value = "server")]
    server: String,
    /// Worker hosts and the slots each may take, comma-separated: `gpu1:0,cpu1:1-2,cpu2:3+4`
    /// (`NAME:*`: any slot).
    #[arg(long, value_name = "NAME:SLOTS,...", value_delimiter = ',')]
    workers: Vec<String>,
    /// Days every certificate (and the CA) stays valid.
    #[arg(long, value_name = "DAYS", default_value_t = lagom::net::DEFAULT_VALIDITY_DAYS)]
    days: u32,
    /// Revoke these nodes of the existing cluster in --dir instead (writes crl.pem).
    #[arg(
        long,
        value_name = "NAME,...",
        value_delimiter = ',',
        conflicts_with = "workers"
    )]
    revoke: Vec<String>,
}

#[derive(Args, Debug)]
struct ConfigArgs {
    #[command(flatten)]
    overrides: CliOverrides,
}

/// Exit code for a configuration that cannot be used.
const EXIT_CONFIG: u8 = lagom::supervisor::EXIT_CONFIG as u8;
/// Exit code of a worker the server refused.
const EXIT_REFUSED: u8 = lagom::supervisor::EXIT_REFUSED as u8;

/// The server refused this worker for good (the supervisor does not restart it).
#[derive(Debug, thiserror::Error)]
#[error("the server refused this worker ({code:?}): {detail}")]
struct Refused {
    code: lagom::proto::RefusalCode,
    detail: String,
}

fn main() -> ExitCode {
    // Before anything else (no thread has started): the heap on transparent huge pages.
    lagom::compute::restart_with_huge_page_heap();
    let cli = Cli::parse();
    if let Err(e) = init_logging(cli.log_format, cli.log_level.as_deref()) {
        eprintln!("lagom: {e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    // Every role allocates and frees megabyte tensors at a high rate (a training step ~5 000).
    lagom::compute::keep_freed_tensor_buffers();
    tracing::debug!("heap: {}", lagom::compute::describe_heap_pages());
    let format = cli.log_format;
    if let Err(e) = lagom::kernels::simd_path_from_env() {
        complain(format, &e);
        return ExitCode::from(EXIT_CONFIG);
    }
    if cli.command.is_some() && (cli.role.is_some() || cli.overrides != CliOverrides::default()) {
        complain(
            format,
            "--role and configuration flags go after a command (`lagom sim --config FILE`), or \
             without one (`lagom --role server --config FILE`), not before it",
        );
        return ExitCode::from(EXIT_CONFIG);
    }
    let Some(command) = cli.command else {
        let result = match cli.role {
            Some(role) => with_config(&cli.overrides, |c| run_role(c, role)),
            None => {
                complain(
                    format,
                    "give a command (see --help) or --role server|worker|supervisor|local",
                );
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        return exit_code(result, format);
    };
    let result = match command {
        Command::Sim(args) => with_config(&args.overrides, |c| run_sim(c, args.quiet)),
        Command::Sweep(args) => run_sweep(&args),
        Command::Report(args) => run_report(&args).map_err(Failure::Run),
        Command::Train(args) => with_config(&args.overrides, |c| run_train(c, args.quiet)),
        Command::Bench(args) => with_config(&args.overrides, |c| run_bench(c, &args)),
        Command::Certs(args) => run_certs(&args).map_err(Failure::Run),
        Command::Config(args) => with_config(&args.overrides, print_config),
        Command::Eval(args) => with_config(&args.overrides, |c| run_eval(c, &args.model)),
        Command::Completions(args) => {
            // Generated into memory first: clap_complete panics on a failed write.
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "lagom", &mut script);
            std::io::Write::write_all(&mut std::io::stdout(), &script)
                .context("cannot write the completion script")
                .map_err(Failure::Run)
        }
        Command::Man => clap_mangen::Man::new(Cli::command())
            .render(&mut std::io::stdout())
            .context("cannot write the manual page")
            .map_err(Failure::Run),
    };
    exit_code(result, format)
}

/// Says why lagom stops: `lagom: MESSAGE` on standard error, or, with `--log-format json`, an
/// error log line like every other line there.
fn complain(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("lagom: {message}"),
        LogFormat::Json => tracing::error!("{message}"),
    }
}

fn exit_code(result: Result<(), Failure>, format: LogFormat) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Config(e)) => {
            complain(format, &e.to_string());
            ExitCode::from(EXIT_CONFIG)
        }
        Err(Failure::Run(e)) => {
            complain(format, &format!("{e:#}"));
            if e.is::<Refused>() {
                ExitCode::from(EXIT_REFUSED)
            } else if e
                .chain()
                .any(|c| c.is::<lagom::supervisor::GaveUpOnWorkers>())
            {
                ExitCode::from(lagom::supervisor::EXIT_GAVE_UP as u8)
            } else if e.chain().any(|c| c.is::<ConfigError>()) {
                ExitCode::from(EXIT_CONFIG)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

enum Failure {
    Config(ConfigError),
    Run(anyhow::Error),
}

fn with_config(
    overrides: &CliOverrides,
    f: impl FnOnce(&Config) -> Result<()>,
) -> Result<(), Failure> {
    let (config, _sources) = config::load(overrides).map_err(Failure::Config)?;
    f(&config).map_err(Failure::Run)
}

fn print_config(config: &Config) -> Result<()> {
    let text = toml::to_string(config).context("cannot encode the configuration as TOML")?;
    print!("{text}");
    Ok(())
}

/// Creates the run directory and records the effective configuration in it.
fn prepare_run_dir(config: &Config) -> Result<RunDir> {
    let dir = RunDir::create(&config.run.dir)?;
    let effective = toml::to_string(config).context("cannot encode the configuration as TOML")?;
    dir.write_atomically("config.toml", effective.as_bytes())?;
    Ok(dir)
}

fn run_train(config: &Config, quiet: bool) -> Result<()> {
    lagom::compute::set_cpu_threads(config.compute.threads);
    let dir = prepare_run_dir(config)?;
    let mut metrics = dir.metrics()?;
    let result = lagom::train::run(&config.train_setup(), &mut metrics, !quiet)?;
    dir.write_atomically(lagom::model::MODEL_FILE, &result.model)?;
    dir.write_summary(&result.summary)?;
    println!("{} — {}", result.summary.headline(), dir.path().display());
    Ok(())
}

fn run_eval(config: &Config, model: &std::path::Path) -> Result<()> {
    use lagom::compute::Engine;
    use lagom::model::{load_safetensors, InputSpec, Network};
    lagom::compute::set_cpu_threads(config.compute.threads);
    let device = config.compute.device.open()?;
    let test = &lagom::data::load_test(
        config.data.name,
        config.data.dir.as_deref(),
        config.run.seed,
    )?;
    let net = Network::with_kernels(
        config.model.name,
        InputSpec::of(test),
        &device,
        config.run.seed,
        config.compute.cpu_kernels,
    )?;
    load_safetensors(&net, model)?;
    let e = Engine::new(net).evaluate(test, config.train.eval_batch_size)?;
    println!(
        "{}: test accuracy {:.2} %, loss {:.4}, on the {} test examples of {} ({})",
        model.display(),
        100.0 * e.accuracy,
        e.loss,
        e.samples,
        config.data.name.as_str(),
        config.model.name.as_str()
    );
    Ok(())
}

fn run_role(config: &Config, role: RoleName) -> Result<()> {
    lagom::compute::set_cpu_threads(config.compute.threads);
    // Workers never serve metrics: a host runs several, and their supervisor reports for them.
    if !matches!(role, RoleName::Worker) {
        lagom::monitor::start(&config.monitor)?;
    }
    match role {
        RoleName::Worker => match lagom::node::run_worker_role(config)? {
            lagom::node::WorkerExit::Stopped { gradients } => {
                println!(
                    "worker {}: stopped by the server after {gradients} gradients",
                    config.net.worker
                );
                Ok(())
            }
            lagom::node::WorkerExit::Refused {
                code: lagom::proto::RefusalCode::Finished,
                detail,
            } => {
                println!(
                    "worker {}: the run is already over ({detail})",
                    config.net.worker
                );
                Ok(())
            }
            lagom::node::WorkerExit::Refused { code, detail } => {
                Err(Refused { code, detail }.into())
            }
        },
        RoleName::Supervisor => {
            let dir = RunDir::create(&config.run.dir.join("supervisor"))?;
            let effective =
                toml::to_string(config).context("cannot encode the configuration as TOML")?;
            dir.write_atomically("config.toml", effective.as_bytes())?;
            let mut metrics = dir.metrics()?;
            let config_file = dir.path().join("config.toml");
            let end = actix::System::new().block_on(lagom::supervisor::supervise(
                &config.supervision_setup(),
                config_file,
                &mut metrics,
            ))?;
            let how = match end {
                lagom::supervisor::SupervisionEnd::Finished => "every worker finished".to_string(),
                lagom::supervisor::SupervisionEnd::Signalled(s) => format!("stopped by {s}"),
            };
            println!(
                "supervisor: {how} — events in {}",
                dir.path().join("metrics.jsonl").display()
            );
            Ok(())
        }
        RoleName::Server | RoleName::Local => {
            let dir = prepare_run_dir(config)?;
            let summary = match role {
                RoleName::Server => lagom::node::run_server(config, &dir)?,
                _ => lagom::node::run_local(config, &dir)?,
            };
            dir.write_summary(&summary)?;
            println!(
                "{} — results in {}",
                summary.headline(),
                dir.path().display()
            );
            Ok(())
        }
    }
}

fn run_certs(args: &CertsArgs) -> Result<()> {
    if !args.revoke.is_empty() {
        let crl = lagom::net::revoke(&args.dir, &args.revoke)?;
        println!(
            "revoked {}; copy {} to every node's certificate directory (servers and workers read \
             it when they start)",
            args.revoke.join(", "),
            crl.display()
        );
        return Ok(());
    }
    let workers = args
        .workers
        .iter()
        .map(|w| lagom::net::parse_worker_host(w))
        .collect::<Result<Vec<_>>>()?;
    if args.days == 0 {
        anyhow::bail!("--days 0: certificates must be valid for at least a day");
    }
    let validity = std::time::Duration::from_secs(u64::from(args.days) * 86_400);
    let written = lagom::net::write_cluster(&args.dir, &args.server, &workers, validity)?;
    for path in &written {
        println!("wrote {}", path.display());
    }
    println!(
        "copy ca.pem and a node's NAME.pem + NAME.key to that node; keep ca.key offline \
         (it signs new nodes)"
    );
    Ok(())
}

fn run_bench(config: &Config, args: &BenchArgs) -> Result<()> {
    use lagom::compute::BenchSpec;
    lagom::compute::set_cpu_threads(config.compute.threads);
    let device = config.compute.device.open()?;
    let (channels, height, width, classes) = config.data.name.shape();
    let spec = BenchSpec {
        model: config.model.name,
        input: lagom::model::InputSpec {
            channels,
            height,
            width,
            classes,
        },
        batch_size: config.train.batch_size,
        kernels: config.compute.cpu_kernels,
        activations: config.compute.activations,
        seed: config.run.seed,
    };
    lagom::compute::run_bench(&spec, &device, args.steps)?;
    if let Some(other) = &args.compare_with {
        compare_bench_gradients(&spec, device, other.open()?, args.tolerance)?;
    }
    Ok(())
}

/// Prints how far the gradient on `device` is from the one on `reference`; an error beyond
/// `tolerance`.
fn compare_bench_gradients(
    spec: &lagom::compute::BenchSpec,
    device: candle_core::Device,
    reference: candle_core::Device,
    tolerance: f64,
) -> Result<()> {
    use lagom::compute::{compare_gradients, describe_side, ComputeSide};
    let side = ComputeSide {
        device,
        kernels: spec.kernels,
    };
    let reference = ComputeSide {
        device: reference,
        kernels: spec.kernels,
    };
    let d = compare_gradients(
        spec.model,
        spec.input,
        spec.batch_size,
        spec.seed,
        &side,
        &reference,
    )?;
    let verdict = if d.within(tolerance) { "ok" } else { "FAILED" };
    println!(
        "gradient_compare {} vs {}: {} components, relative_l2 {:.3e}, relative_max {:.3e}, \
         relative_loss {:.3e}, tolerance {tolerance:.0e}: {verdict}",
        describe_side(&side),
        describe_side(&reference),
        d.len,
        d.relative_l2,
        d.relative_max,
        d.relative_loss,
    );
    if !d.within(tolerance) {
        bail!(
            "the gradient on {} is {:.3e} (relative L2) from the one on {}, above the tolerance \
             {tolerance:.0e}",
            describe_side(&side),
            d.relative_l2,
            describe_side(&reference)
        );
    }
    Ok(())
}

fn run_sweep(args: &SweepArgs) -> Result<(), Failure> {
    use lagom::sweep::{self, Grid, RunnerOptions};
    let bad_grid = |e: anyhow::Error| Failure::Config(ConfigError::Invalid(vec![format!("{e:#}")]));
    let grid = Grid::load(&args.config).map_err(bad_grid)?;
    let runs = sweep::identify(&grid, &args.set).map_err(bad_grid)?;
    let out = args.out.clone().unwrap_or_else(|| {
        let stem = args
            .config
            .file_stem()
            .map_or("grid".into(), |s| s.to_string_lossy());
        std::path::Path::new("runs").join(format!("sweep-{stem}"))
    });
    if args.dry_run {
        for run in &runs {
            let point: Vec<String> = run
                .planned
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let done = sweep::finished(&sweep::run_dir(&out, &run.id), run);
            let state = if done { "done" } else { "to run" };
            println!("{} {state:6} {}", run.id, point.join(" "));
        }
        println!(
            "{} runs, configurations checked — {}",
            runs.len(),
            out.display()
        );
        return Ok(());
    }
    let jobs = args.jobs.max(1);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let options = RunnerOptions {
        exe: std::env::current_exe()
            .context("cannot find the lagom executable")
            .map_err(Failure::Run)?,
        command: grid.command,
        jobs,
        threads: args.threads.unwrap_or((cpus / jobs).max(1)),
        progress: !args.quiet,
    };
    let outcome = sweep::sweep(&grid, &runs, &out, &options).map_err(Failure::Run)?;
    let r = &outcome.report;
    println!(
        "{} runs: {} done now, {} done before, {} failed — {}/{} and {}/{}",
        outcome.results.len(),
        r.completed,
        r.skipped,
        r.failed.len(),
        out.display(),
        sweep::RESULTS_FILE,
        out.display(),
        sweep::TABLE_FILE,
    );
    if r.failed.is_empty() {
        Ok(())
    } else {
        Err(Failure::Run(anyhow::anyhow!(
            "{} run(s) failed (their lagom.log says why): {}",
            r.failed.len(),
            r.failed.join(", ")
        )))
    }
}

fn run_report(args: &ReportArgs) -> Result<()> {
    let files = lagom::report::report(&args.dirs, &args.out)?;
    for f in &files {
        println!("{}", f.display());
    }
    Ok(())
}

fn run_sim(config: &Config, quiet: bool) -> Result<()> {
    lagom::compute::set_cpu_threads(config.compute.threads);
    let dir = prepare_run_dir(config)?;
    let mut metrics = dir.metrics()?;
    let started = std::time::Instant::now();
    let result = lagom::sim::run(&config.sim_setup(), &mut metrics, !quiet)?;
    dir.write_summary(&result.summary)?;
    println!(
        "{} — {} ({:.2} s)",
        result.summary.headline(),
        dir.path().display(),
        started.elapsed().as_secs_f64(),
    );
    // A model's gradients are the cost a user compares the simulator against (an analytic
    // objective's cost nothing, so its share would say nothing).
    if config.sim.objective == lagom::sim::ObjectiveName::Model {
        if let Some(line) = result.host.line() {
            println!("{line}");
        }
    }
    Ok(())
}
