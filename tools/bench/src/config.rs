//! courier's configuration for each scenario, written as TOML the way an operator would, and the
//! number of deliveries it implies.
//!
//! The expected count is computed with courier's own configuration loader, decoder and router
//! over the same generated events, so a run is only accepted when the receiver counted exactly
//! what the configuration says should arrive (more is reported as duplicates, fewer fails).

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::anyhow;
use courier::event::{decode, Decoded};
use courier::routing::Router;
use courier_generator::project_id;

use crate::cli::RunArgs;
use crate::data::EventSource;

/// Projects of the isolation scenario: one webhook destination each.
pub const ISOLATION_PROJECTS: usize = 20;
/// Of these, the first `ISOLATION_FAILING` answer 503 forever, the next one hangs (the black
/// hole) and project [`ISOLATION_SLOW`] answers too slowly for its share, in the isolation
/// scenario's second run.
pub const ISOLATION_FAILING: usize = 2;
/// The project whose destination answers every request after [`SLOW_ANSWER`], one at a time,
/// 10 events each: about 33 events/s for its share of 100 (at the default rate). It is project
/// 4, not 3, so that with 4 partitions one partition in four carries no broken destination's
/// events (the "apart" group).
pub const ISOLATION_SLOW: usize = 4;
/// Projects whose destination is broken in the isolation scenario's second run.
pub const ISOLATION_BROKEN: [usize; 4] = [0, 1, 2, ISOLATION_SLOW];
/// How long the slow destination of the isolation scenario takes to answer (the receiver's
/// `/slow/` path; within half the broken destinations' `request_timeout`, so it is slow, not
/// suspect).
pub const SLOW_ANSWER: Duration = Duration::from_millis(300);
/// Delivery settings of the destinations that are broken in the isolation scenario (in both of
/// its runs, so that the runs differ only in the URLs): the in-line budget of one of their
/// batches is `batch_timeout` + `retry_max_elapsed` + one `request_timeout`.
pub const BROKEN_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
pub const BROKEN_RETRY_MAX_ELAPSED: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One webhook destination per project, no filter: every event is delivered once.
    OnePerProject,
    /// One project with one webhook destination taking every event (a big tenant, or an
    /// operator-wide archive), at courier's default delivery settings.
    Busy,
    /// Three destinations per project with varied filters.
    FanOut,
    /// Per project a healthy destination and one that never answers.
    Stalled,
    /// `ISOLATION_PROJECTS` projects with one webhook destination each. `broken`: the first
    /// `ISOLATION_FAILING` answer 503, the next one never answers, `ISOLATION_SLOW` answers
    /// slowly; otherwise these point at the receiver's uncounted `/ok/` path. The others are
    /// the healthy ones, at `/hook/`.
    Isolation { broken: bool },
}

impl Layout {
    /// The source of this layout's data, when the run has `projects` projects.
    pub fn source(self, projects: usize) -> EventSource {
        match self {
            Layout::Isolation { .. } => EventSource::rotating(ISOLATION_PROJECTS),
            Layout::Busy => EventSource::rotating(1),
            _ => EventSource::with_projects(projects),
        }
    }
}

/// What a configuration is written for: the run's options, its topic and consumer group, and
/// the ports of courier's server and of the receiver. `tag` makes the failure and retry topics
/// of each run its own.
pub struct Setup<'a> {
    pub args: &'a RunArgs,
    pub topic: &'a str,
    pub group: String,
    pub listen_port: u16,
    pub receiver_port: u16,
    pub stall_port: u16,
    pub layout: Layout,
    pub tag: String,
}

pub fn courier_config(s: &Setup<'_>) -> String {
    let mut t = String::new();
    let tag = &s.tag;
    let _ = write!(
        t,
        r#"shutdown_timeout = "20s"

[kafka]
brokers = "{brokers}"
topic = "{topic}"
group_id = "{group}"
commit_interval = "100ms"

[kafka.options]
"fetch.wait.max.ms" = "5"
"auto.offset.reset" = "earliest"
"session.timeout.ms" = "10000"
{extra_options}

[failures]
topic = "bench-failures-{tag}"
retry_topic = "bench-retry-{tag}"
retry_topic_partitions = 4

[server]
listen = "127.0.0.1:{listen}"

[security]
allow_networks = ["127.0.0.0/8"]

[limits]
max_in_flight_events = {max_events}
max_in_flight_bytes = {max_bytes}

[log]
format = "json"
level = "warn"

[delivery]
batch_timeout = "{batch_timeout}"
"#,
        brokers = s.args.brokers,
        topic = s.topic,
        group = s.group,
        listen = s.listen_port,
        batch_timeout = s.args.batch_timeout,
        max_events = s.args.max_in_flight_events,
        max_bytes = s.args.max_in_flight_bytes,
        extra_options = s
            .args
            .kafka_options
            .iter()
            .filter_map(|o| o.split_once('='))
            .map(|(k, v)| format!("{k:?} = {v:?}\n"))
            .collect::<String>(),
    );
    let hook = |project: &str, id: &str| {
        format!("http://127.0.0.1:{}/hook/{project}/{id}", s.receiver_port)
    };
    let projects = match s.layout {
        Layout::Isolation { .. } => ISOLATION_PROJECTS,
        Layout::Busy => 1,
        _ => s.args.projects as usize,
    };
    for n in 1..=projects {
        let project = project_id(n);
        let mut dest = |id: &str, url: String, filter: &str| {
            let _ = write!(
                t,
                "\n[[destinations]]\nproject = \"{project}\"\nid = \"{id}\"\ntype = \"webhook\"\nurl = \"{url}\"\n"
            );
            if !filter.is_empty() {
                let _ = write!(t, "[destinations.filter]\n{filter}\n");
            }
        };
        match s.layout {
            Layout::OnePerProject | Layout::Busy => dest("all", hook(&project, "all"), ""),
            Layout::FanOut => {
                dest("all", hook(&project, "all"), "");
                let second = match n % 3 {
                    0 => r#"min_level = "WARN""#,
                    1 => r#"levels = ["ERROR", "DEBUG"]"#,
                    _ => r#"types = ["APP_EVENT", "WEBHOOK_TRIGGER", "ACTIONKIT"]"#,
                };
                dest("second", hook(&project, "second"), second);
                let third = match n % 4 {
                    0 => r#"integration_ids = ["salesforce", "hubspot"]"#,
                    1 => r#"end_user_ids = ["user-1", "user-2", "user-3", "user-4", "user-5"]"#,
                    2 => r#"search = "\"status\":\"EVENT_STATUS.FAILED\"""#,
                    _ => {
                        r#"since = "2026-11-01T00:00:00Z"
until = "2026-11-01T01:00:00Z"
min_level = "INFO""#
                    }
                };
                dest("third", hook(&project, "third"), third);
            }
            Layout::Stalled => {
                dest("healthy", hook(&project, "healthy"), "");
                dest(
                    "stalled",
                    format!("http://127.0.0.1:{}/stall/{project}", s.stall_port),
                    "",
                );
                // Its circuit opens after 3 timeouts of 1 s; parked events are due only after
                // the run, so the retry worker never re-attempts them here.
                t.push_str(
                    "[destinations.delivery]\nrequest_timeout = \"1s\"\nretry_max_elapsed = \"2s\"\n\
                     retry_initial_backoff = \"100ms\"\nretry_max_backoff = \"500ms\"\n\
                     circuit_failure_threshold = 3\nprobe_interval = \"10m\"\nretry_schedule = [\"1h\"]\n",
                );
            }
            Layout::Isolation { broken } => {
                let i = n - 1;
                let url = if !ISOLATION_BROKEN.contains(&i) {
                    // The last path segment groups the receiver's latencies.
                    let group = if shares_partition_with_broken(i, s.args.partitions) {
                        "shared"
                    } else {
                        "apart"
                    };
                    hook(&project, group)
                } else if !broken {
                    format!("http://127.0.0.1:{}/ok/{project}/webhook", s.receiver_port)
                } else if i < ISOLATION_FAILING {
                    format!(
                        "http://127.0.0.1:{}/fail/{project}/webhook",
                        s.receiver_port
                    )
                } else if i == ISOLATION_SLOW {
                    format!(
                        "http://127.0.0.1:{}/slow/{project}/webhook",
                        s.receiver_port
                    )
                } else {
                    format!("http://127.0.0.1:{}/stall/{project}", s.stall_port)
                };
                dest("webhook", url, "");
                if ISOLATION_BROKEN.contains(&i) {
                    // Realistic settings for a destination that may break: a short request
                    // timeout and in-line budget, a circuit that opens after 3 failures and
                    // probes every 5 s; parked events are due only after the run, so the retry
                    // worker never re-attempts them here.
                    let _ = write!(
                        t,
                        "[destinations.delivery]\nrequest_timeout = \"{}ms\"\nretry_max_elapsed = \"{}ms\"\n\
                         retry_initial_backoff = \"100ms\"\nretry_max_backoff = \"500ms\"\n\
                         circuit_failure_threshold = 3\nprobe_interval = \"5s\"\nretry_schedule = [\"1h\"]\n",
                        BROKEN_REQUEST_TIMEOUT.as_millis(),
                        BROKEN_RETRY_MAX_ELAPSED.as_millis(),
                    );
                }
                if i == ISOLATION_SLOW {
                    // One request of 10 events at a time: it cannot keep up, and its queue of
                    // 50 fills within a second of the start.
                    t.push_str("max_in_flight = 1\nbatch_max_events = 10\nqueue_max_events = 50\n");
                }
            }
        }
    }
    t
}

/// Whether project `j` (0-based) of the isolation scenario has events in a partition that
/// also carries events of a broken destination: event `i` goes to project `i mod 20` and
/// partition `i mod partitions`, so project `j`'s events are in the partitions congruent to
/// `j` modulo gcd(20, partitions).
fn shares_partition_with_broken(j: usize, partitions: i32) -> bool {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    let g = gcd(ISOLATION_PROJECTS, partitions.max(1) as usize);
    ISOLATION_BROKEN.iter().any(|b| b % g == j % g)
}

/// Deliveries to the receiver's `/hook/` the configuration implies for `n` benchmark
/// events, computed with courier's own decoder and router.
pub fn expected_deliveries(
    config_path: &Path,
    mut source: EventSource,
    n: u64,
) -> anyhow::Result<u64> {
    let config = courier::config::load(config_path)
        .map_err(|e| anyhow!("benchmark configuration is invalid:\n{e}"))?;
    let mut router = Router::new();
    let mut to_receiver = Vec::new();
    for d in config.destinations.iter().filter(|d| d.enabled) {
        let url = match &d.sink {
            courier::config::SinkConfig::Webhook(w) => w.url.clone(),
            _ => String::new(),
        };
        router.add(&d.project, &d.id, &d.filter, to_receiver.len());
        to_receiver.push(url.contains("/hook/"));
    }
    let mut buf = Vec::with_capacity(2048);
    let mut total = 0;
    for _ in 0..n {
        source.next(1_000_000_000_000_000, &mut buf);
        if let Decoded::Routable(fields) = decode(Some(&buf), usize::MAX) {
            router.route(&fields, &buf, None, |lane| {
                if to_receiver[lane] {
                    total += 1;
                }
            });
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(layout: Layout, dir: &Path) -> std::path::PathBuf {
        let args = RunArgs::defaults("127.0.0.1:9092");
        let setup = Setup {
            args: &args,
            topic: "events",
            group: "bench".into(),
            listen_port: 8080,
            receiver_port: 8081,
            stall_port: 8082,
            layout,
            tag: "test".into(),
        };
        let path = dir.join(format!("{layout:?}.toml").replace([' ', '{', '}', ':'], ""));
        std::fs::write(&path, courier_config(&setup)).unwrap();
        path
    }

    #[test]
    fn every_layout_is_a_configuration_courier_accepts() {
        let dir = tempfile::tempdir().unwrap();
        for layout in [
            Layout::OnePerProject,
            Layout::Busy,
            Layout::FanOut,
            Layout::Stalled,
            Layout::Isolation { broken: false },
            Layout::Isolation { broken: true },
        ] {
            let path = write(layout, dir.path());
            let config = courier::config::load(&path)
                .unwrap_or_else(|e| panic!("{layout:?} is not a valid configuration:\n{e}"));
            let projects = match layout {
                Layout::Isolation { .. } => ISOLATION_PROJECTS,
                Layout::Busy => 1,
                _ => 1000,
            };
            let per_project = match layout {
                Layout::FanOut => 3,
                Layout::Stalled => 2,
                _ => 1,
            };
            assert_eq!(
                config.destinations.len(),
                projects * per_project,
                "{layout:?}"
            );
        }
    }

    #[test]
    fn expected_deliveries_count_only_what_reaches_the_hook_path() {
        let dir = tempfile::tempdir().unwrap();
        let n = 400;
        let count = |layout: Layout| {
            expected_deliveries(&write(layout, dir.path()), layout.source(1000), n).unwrap()
        };
        // One destination per project, no filter: each event once.
        assert_eq!(count(Layout::OnePerProject), n);
        // One project, one destination: each event once.
        assert_eq!(count(Layout::Busy), n);
        // The stalled destination is not the receiver's `/hook/`.
        assert_eq!(count(Layout::Stalled), n);
        // The `all` destination takes each event, the two filtered ones some.
        let fanout = count(Layout::FanOut);
        assert!(fanout > n && fanout < 3 * n, "{fanout}");
        // Projects in turn; the four that may break (at `/ok/`, or broken) are not counted.
        let healthy =
            n / ISOLATION_PROJECTS as u64 * (ISOLATION_PROJECTS - ISOLATION_BROKEN.len()) as u64;
        assert_eq!(count(Layout::Isolation { broken: false }), healthy);
        assert_eq!(count(Layout::Isolation { broken: true }), healthy);
    }

    #[test]
    fn projects_sharing_a_partition_with_a_broken_one() {
        // 4 partitions: project j's events are in the partitions ≡ j (mod 4); the broken ones
        // are projects 0, 1, 2 and 4.
        let shared: Vec<usize> = (0..ISOLATION_PROJECTS)
            .filter(|&j| shares_partition_with_broken(j, 4))
            .collect();
        assert_eq!(shared.len(), 15);
        assert!(shared.iter().all(|j| j % 4 != 3));
        // With 1 or 3 partitions every project shares one with a broken project.
        for partitions in [1, 3] {
            assert!((0..ISOLATION_PROJECTS).all(|j| shares_partition_with_broken(j, partitions)));
        }
    }
}
