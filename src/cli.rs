//! The command line: `run`, `validate`, `demo`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SinkConfig};
use crate::metrics::Metrics;
use crate::server::{self, Health};
use crate::{demo, logging, pipeline, reload, replay, test_destination};

/// courier forwards Event Logs from Kafka to each project's destinations (webhooks, files,
/// and more), in batches, with retries, at least once; a delivery that finally fails is
/// reported as a delivery-failure Event Log in Kafka.
#[derive(Debug, Parser)]
#[command(name = "courier", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume the Event Logs topic and deliver to the destinations.
    Run {
        /// The configuration file.
        #[arg(long, short, default_value = "config/courier.toml")]
        config: PathBuf,
    },
    /// Check a configuration file; every error names the file and key path. Exit 1 if invalid.
    Validate {
        /// The configuration file.
        #[arg(long, short, default_value = "config/courier.toml")]
        config: PathBuf,
    },
    /// Re-deliver a range of the Event Logs topic (offsets, RFC 3339 times or relative times
    /// like 2h; --from included, --to excluded) through the same routing and sinks as `run`.
    /// Never joins the live group, never commits. Exit 0 all delivered, 1 some failed, 2 usage
    /// or configuration error.
    Replay {
        /// The configuration file.
        #[arg(long, short, default_value = "config/courier.toml")]
        config: PathBuf,
        /// Start of the range (included): an offset, an RFC 3339 time or a relative time (2h).
        #[arg(long)]
        from: String,
        /// End of the range (excluded), in the same forms, or `end` (what each partition
        /// holds when the replay starts).
        #[arg(long)]
        to: String,
        /// The topic to read (default kafka.topic; with --from-failures, the failures topic).
        #[arg(long)]
        topic: Option<String>,
        /// Partitions to read (repeatable; default all).
        #[arg(long = "partition")]
        partitions: Vec<i32>,
        /// Only this project's destinations (repeatable).
        #[arg(long = "project")]
        projects: Vec<String>,
        /// Only destinations with this id (repeatable).
        #[arg(long = "destination")]
        destinations: Vec<String>,
        /// Count per destination what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// At most this many events per second.
        #[arg(long)]
        rate: Option<u64>,
        /// Read the delivery-failure events in [from, to) of the failures topic and replay
        /// exactly the events they report to exactly the destination each names.
        #[arg(long)]
        from_failures: bool,
    },
    /// Check one destination and send it one synthetic Event Log; show its answer. Exit 0
    /// when it accepted the event, 1 when not, 2 for a configuration error.
    TestDestination {
        /// The configuration file.
        #[arg(long, short, default_value = "config/courier.toml")]
        config: PathBuf,
        /// The destination's project.
        #[arg(long)]
        project: String,
        /// The destination's id.
        #[arg(long)]
        destination: String,
    },
    /// Webhook body templates.
    Template {
        /// What to do with them.
        #[command(subcommand)]
        command: TemplateCommand,
    },
    /// Run the whole pipeline on an embedded broker with generated Event Logs and local
    /// destinations (an in-process webhook receiver and files under ./demo-out/).
    Demo {
        /// How many messages to generate.
        #[arg(long, default_value_t = 20_000)]
        events: u64,
        /// Stop after this many seconds even if not everything was delivered.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Also serve the destinations API and the web console (address and a demo token are
        /// printed), and keep a trickle of events flowing until Ctrl-C.
        #[arg(long)]
        serve: bool,
    },
}

/// `courier template …`.
#[derive(Debug, Subcommand)]
pub enum TemplateCommand {
    /// Print a preset's template (slack, teams, newrelic, pagerduty), to start your own.
    Show {
        /// The preset.
        preset: String,
    },
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Run { config } => report(run(&config)),
        Command::Demo {
            events,
            seconds,
            serve,
        } => report(demo::main(events, seconds, serve)),
        Command::Template {
            command: TemplateCommand::Show { preset },
        } => show_template(&preset),
        Command::TestDestination {
            config,
            project,
            destination,
        } => test_destination::main(&config, &project, &destination),
        Command::Replay {
            config,
            from,
            to,
            topic,
            partitions,
            projects,
            destinations,
            dry_run,
            rate,
            from_failures,
        } => replay::main(replay::ReplayArgs {
            config,
            from,
            to,
            topic,
            partitions,
            projects,
            destinations,
            dry_run,
            rate,
            from_failures,
        }),
    }
}

/// Prints a preset's template; exit 2 for an unknown preset.
fn show_template(name: &str) -> ExitCode {
    use crate::sinks::webhook::presets;
    match presets::Preset::from_name(name) {
        Some(preset) => {
            print!("{}", preset.template());
            ExitCode::SUCCESS
        }
        None => {
            let names: Vec<&str> = presets::ALL.iter().map(|p| p.name()).collect();
            eprintln!(
                "courier template show: no preset {name:?}; presets: {}",
                names.join(", ")
            );
            ExitCode::from(2)
        }
    }
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("courier: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn validate(path: &Path) -> ExitCode {
    match config::load(path) {
        Ok(config) => {
            println!("{}: valid", path.display());
            println!(
                "  kafka: {} topic {:?} group {:?}",
                config.kafka.brokers, config.kafka.topic, config.kafka.group_id
            );
            println!("  destinations: {}", config.destinations.len());
            for d in &config.destinations {
                println!(
                    "    {}/{} ({}){}",
                    d.project,
                    d.id,
                    describe_sink(&d.sink),
                    if d.enabled { "" } else { " disabled" }
                );
            }
            println!("  parking: {}", parking_preview(&config));
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: invalid ({} error{})",
                path.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            ExitCode::FAILURE
        }
    }
}

/// How long `validate` waits for the broker before saying it cannot tell the parking mode.
const VALIDATE_BROKER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Which parking mode a running courier would use and why, asking the broker (briefly). An
/// unreachable broker is said, not an error: validation must pass offline (CI has no broker).
fn parking_preview(config: &Config) -> String {
    use crate::parking::retention;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return format!("not checked (cannot start the async runtime: {e})"),
    };
    match runtime.block_on(retention::decide_within(config, VALIDATE_BROKER_TIMEOUT)) {
        Ok(decision) if decision.safe => format!("{} ({})", decision.parking, decision.reason),
        Ok(decision) => format!("{} — WARNING ({})", decision.parking, decision.reason),
        Err(retention::Unreachable(why)) => format!(
            "not checked: {why}; a running courier reads the retention of topic {} at start (failures.parking = {:?})",
            config.kafka.topic,
            config.failures.parking.as_str()
        ),
    }
}

/// A one-line description of a sink without secrets.
fn describe_sink(sink: &SinkConfig) -> String {
    match sink {
        SinkConfig::Webhook(w) => {
            let url = reqwest::Url::parse(&w.url)
                .map(|mut u| {
                    // Credentials can hide in the URL; show only where it goes.
                    let _ = u.set_password(None);
                    let _ = u.set_username("");
                    u.set_query(None);
                    u.to_string()
                })
                .unwrap_or_default();
            format!(
                "webhook {url}{}",
                if w.secret.is_some() { ", signed" } else { "" }
            )
        }
        SinkConfig::File(f) => format!("file {}", f.path.display()),
        SinkConfig::S3(c) => crate::sinks::s3::describe(c),
        SinkConfig::Datadog(c) => crate::sinks::datadog::describe(c),
        SinkConfig::SplunkHec(c) => crate::sinks::splunk::describe(c),
        SinkConfig::Otlp(c) => crate::sinks::otlp::describe(c),
        SinkConfig::Email(c) => crate::sinks::email::describe(c),
    }
}

fn run(path: &Path) -> anyhow::Result<()> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid configuration:\n{e}"))?;
    logging::init(&config.log);
    let runtime = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    runtime.block_on(run_daemon(path.to_owned(), Arc::new(config)))
}

async fn run_daemon(path: PathBuf, config: Arc<Config>) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::with_options(config.metrics.per_destination));
    let health = Arc::new(Health::default());
    health.config_loaded.store(true, Ordering::Relaxed);
    let stop = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let api = config.api.as_ref().map(|_| crate::api::Api::default());
    let (_, server) = server::serve_with(
        config.server.listen,
        metrics.clone(),
        health.clone(),
        api.clone(),
        server_stop.clone(),
    )
    .await
    .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    tokio::spawn(crate::signal::stop_on_signal(stop.clone()));
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    // With the destinations API, file reloads and store changes meet in one merger that
    // feeds the pipeline; without it, file reloads go to the pipeline directly.
    let (running, file_reloads, merger) = match (&api, &config.api) {
        (Some(api), Some(api_config)) => {
            let (file_tx, file_rx) = tokio::sync::mpsc::channel(1);
            let (merged, merger) = crate::api::start(
                api,
                &config,
                api_config,
                metrics.clone(),
                health.destinations.clone(),
                file_rx,
                reload_tx,
                stop.clone(),
            )
            .await?;
            (merged, file_tx, Some(merger))
        }
        _ => (config.clone(), reload_tx, None),
    };
    let watcher = {
        let (config, metrics, stop) = (config.clone(), metrics.clone(), stop.clone());
        tokio::spawn(async move { reload::watch(path, config, file_reloads, metrics, stop).await })
    };
    let drain = pipeline::run(&running, metrics, health, reload_rx, stop.clone()).await;
    stop.cancel();
    let _ = watcher.await;
    if let Some(merger) = merger {
        let _ = merger.await;
    }
    let drain = drain?;
    tracing::info!(?drain, "courier stopped");
    server_stop.cancel();
    let _ = server.await;
    Ok(())
}
