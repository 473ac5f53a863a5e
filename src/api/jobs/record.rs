//! A job as the jobs topic holds it: key the job id, value a versioned JSON record with what
//! `GET /v1/jobs/{id}` answers and what a restarted replica needs to run the job again. The
//! record is the only copy of a job, so any replica answers from it and it outlives the
//! replica that wrote it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::fleet::table::{Codec, Rows};
use crate::replay::Summary;

/// The version of the records this courier writes; a record of another version is skipped
/// (logged), never misread.
pub const RECORD_VERSION: u32 = 1;

/// Jobs kept per project: when one is created, that project's finished jobs beyond the
/// newest this many are deleted.
pub const KEEP_PER_PROJECT: usize = 100;

/// The only kind of job so far.
pub const REPLAY_FAILURES: &str = "replay_failures";

/// One job, as written to the jobs topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobRecord {
    /// [`RECORD_VERSION`].
    pub v: u32,
    /// The job id (also the record key).
    pub id: String,
    /// What it does: [`REPLAY_FAILURES`].
    pub kind: String,
    /// The destination's project.
    pub project: String,
    /// The destination id.
    pub destination: String,
    /// Start of the range of failure events (included).
    pub from: DateTime<Utc>,
    /// End of the range (excluded); `None`: the end of the failures topic when the job
    /// started (or was run again after a restart of its owner).
    pub to: Option<DateTime<Utc>>,
    /// Whether it only counts.
    pub dry_run: bool,
    /// At most this many events per second.
    pub rate: Option<u64>,
    /// The replica that runs it (`[api] replica_id`).
    pub owner: String,
    /// Running, completed or failed.
    pub state: JobState,
    /// The replay's phase (`planning`, `reading`, `delivering`, `done`).
    pub phase: String,
    /// Messages read and to read.
    pub progress: JobProgress,
    /// The outcome, once completed.
    pub events: Option<ReplayCounts>,
    /// Why it failed.
    pub error: Option<String>,
    /// How many times a restarted owner started it again.
    #[serde(default)]
    pub resumes: u32,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When this record was written.
    pub updated_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A job as answered.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobView {
    /// The job id.
    pub id: String,
    /// What it does: `replay_failures`.
    pub kind: String,
    /// The destination's project.
    pub project: String,
    /// The destination id.
    pub destination: String,
    /// Start of the range of failure events (included).
    pub from: DateTime<Utc>,
    /// End of the range of failure events (excluded); null: every failure event the topic
    /// held when the job started.
    pub to: Option<DateTime<Utc>>,
    /// Whether it only counts (sends nothing).
    pub dry_run: bool,
    /// `running`; `completed` (ran to its end: `events` says what was delivered and what
    /// failed again, each failure reported in a new failure event); `failed` (could not
    /// run to its end: `error` says why; what was sent stays sent).
    pub state: JobState,
    /// `planning` (reading the failure events), `reading` (re-reading the reported events),
    /// `delivering` (the last batches), `done`.
    pub phase: String,
    /// When it was started.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
    /// Messages of the Event Logs topic read so far, of those in the reported ranges.
    pub progress: JobProgress,
    /// The outcome, once completed.
    pub events: Option<ReplayCounts>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A job's state.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Still running.
    Running,
    /// Ran to its end.
    Completed,
    /// Stopped by an error.
    Failed,
}

/// How far a job is.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct JobProgress {
    /// Messages read.
    pub read: u64,
    /// Messages to read (0 until the failure events are read).
    pub total: u64,
}

/// What a completed replay did.
#[derive(Serialize, Deserialize, ToSchema, Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct ReplayCounts {
    /// Events the failure events reported for this destination, found again.
    pub routed: u64,
    /// Of those, delivered (or, in a dry run, 0).
    pub delivered: u64,
    /// Of those, failed again (each reported in a new failure event).
    pub failed: u64,
}

/// What a new job is asked to do: the [`JobRecord`] fields of the same names.
#[derive(Debug, Clone)]
pub struct Spec {
    pub project: String,
    pub destination: String,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
    pub dry_run: bool,
    pub rate: Option<u64>,
}

/// A new job id: 128 random bits from the operating system, so ids are unique and cannot be
/// guessed from another job's.
pub fn job_id() -> String {
    use aes_gcm::aead::rand_core::RngCore;
    let mut bytes = [0u8; 16];
    aes_gcm::aead::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("job_{hex}")
}

impl JobRecord {
    /// A job just started by `owner`.
    pub fn new(spec: Spec, owner: &str, now: DateTime<Utc>) -> JobRecord {
        JobRecord {
            v: RECORD_VERSION,
            id: job_id(),
            kind: REPLAY_FAILURES.into(),
            project: spec.project,
            destination: spec.destination,
            from: spec.from,
            to: spec.to,
            dry_run: spec.dry_run,
            rate: spec.rate,
            owner: owner.to_owned(),
            state: JobState::Running,
            phase: crate::replay::Phase::Planning.as_str().into(),
            progress: JobProgress::default(),
            events: None,
            error: None,
            resumes: 0,
            created_at: now,
            updated_at: now,
            finished_at: None,
        }
    }

    /// Whether it is still running.
    pub fn running(&self) -> bool {
        self.state == JobState::Running
    }

    /// Ends it: completed with the replay's counts for its destination, or failed with
    /// `error`.
    pub fn finish(&mut self, result: Result<&Summary, String>, now: DateTime<Utc>) {
        match result {
            Ok(summary) => {
                let (routed, delivered, failed) = summary
                    .destinations
                    .get(&(self.project.clone(), self.destination.clone()))
                    .copied()
                    .unwrap_or_default();
                self.state = JobState::Completed;
                self.events = Some(ReplayCounts {
                    routed,
                    delivered,
                    failed,
                });
                self.error = None;
            }
            Err(error) => {
                self.state = JobState::Failed;
                self.events = None;
                self.error = Some(error);
            }
        }
        self.phase = crate::replay::Phase::Done.as_str().into();
        self.updated_at = now;
        self.finished_at = Some(now);
    }

    /// The order of the newest-first lists: creation time, then id.
    fn newest_first(a: &JobRecord, b: &JobRecord) -> std::cmp::Ordering {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    }

    /// The answer to `GET /v1/jobs/{id}`.
    pub fn view(&self) -> JobView {
        JobView {
            id: self.id.clone(),
            kind: self.kind.clone(),
            project: self.project.clone(),
            destination: self.destination.clone(),
            from: self.from,
            to: self.to,
            dry_run: self.dry_run,
            state: self.state,
            phase: self.phase.clone(),
            created_at: self.created_at,
            finished_at: self.finished_at,
            progress: self.progress,
            events: self.events,
            error: self.error.clone(),
        }
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a job record serializes")
    }
}

/// The project's jobs, newest first.
pub fn of_project<'a>(rows: &'a Rows<JobCodec>, project: &str) -> Vec<&'a JobRecord> {
    let mut jobs: Vec<&JobRecord> = rows
        .values()
        .map(|j| &**j)
        .filter(|j| j.project == project)
        .collect();
    jobs.sort_by(|a, b| JobRecord::newest_first(a, b));
    jobs
}

/// The finished jobs of `project` beyond its [`KEEP_PER_PROJECT`] newest: the ones to
/// delete. Running jobs are never deleted.
pub fn beyond_kept(rows: &Rows<JobCodec>, project: &str) -> Vec<String> {
    of_project(rows, project)
        .into_iter()
        .skip(KEEP_PER_PROJECT)
        .filter(|j| !j.running())
        .map(|j| j.id.clone())
        .collect()
}

/// A running replay of the same destination started before `job` (creation time, then id),
/// other than `job` itself: when two replicas start one at the same moment, the earlier
/// keeps running and the later withdraws.
pub fn earlier_rival<'a>(rows: &'a Rows<JobCodec>, job: &JobRecord) -> Option<&'a JobRecord> {
    rows.values()
        .map(|j| &**j)
        .filter(|j| {
            j.id != job.id
                && j.running()
                && j.project == job.project
                && j.destination == job.destination
        })
        .filter(|j| (j.created_at, &j.id) < (job.created_at, &job.id))
        .min_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
}

/// The running jobs whose owner stopped for good, as the live replica with the smallest name
/// (`live`, sorted) sees them: owner not among `live`, record not written for `timeout`.
/// Empty on any other replica, so one replica writes their end.
pub fn abandoned<'a>(
    rows: &'a Rows<JobCodec>,
    live: &[String],
    me: &str,
    now: DateTime<Utc>,
    timeout: std::time::Duration,
) -> Vec<&'a JobRecord> {
    if live.first().map(String::as_str) != Some(me) {
        return Vec::new();
    }
    let timeout = chrono::Duration::from_std(timeout).unwrap_or(chrono::Duration::MAX);
    rows.values()
        .map(|j| &**j)
        .filter(|j| j.running() && !live.contains(&j.owner) && now - j.updated_at > timeout)
        .collect()
}

/// A running replay of the destination, if any.
pub fn running_for<'a>(
    rows: &'a Rows<JobCodec>,
    project: &str,
    destination: &str,
) -> Option<&'a JobRecord> {
    rows.values()
        .map(|j| &**j)
        .find(|j| j.running() && j.project == project && j.destination == destination)
}

/// How the jobs topic's records become jobs.
pub struct JobCodec;

impl Codec for JobCodec {
    type Key = String;
    type Value = JobRecord;

    fn name(&self) -> &'static str {
        "jobs table"
    }

    fn key(&self, raw: &[u8]) -> Option<String> {
        std::str::from_utf8(raw)
            .ok()
            .filter(|k| !k.is_empty())
            .map(str::to_owned)
    }

    fn value(&self, key: &String, raw: &[u8]) -> Result<JobRecord, String> {
        #[derive(Deserialize)]
        struct Version {
            v: u32,
        }
        let version: Version =
            serde_json::from_slice(raw).map_err(|e| format!("not a job record: {e}"))?;
        if version.v != RECORD_VERSION {
            return Err(format!(
                "job record version {} (this courier reads version {RECORD_VERSION}; written by another courier version?)",
                version.v
            ));
        }
        let record: JobRecord =
            serde_json::from_slice(raw).map_err(|e| format!("not a job record: {e}"))?;
        if &record.id != key {
            return Err(format!(
                "the record's id {:?} is not its key {key:?}",
                record.id
            ));
        }
        Ok(record)
    }

    fn describe(&self, key: &String) -> String {
        format!("job {key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn spec(project: &str, destination: &str) -> Spec {
        Spec {
            project: project.into(),
            destination: destination.into(),
            from: "2026-12-06T10:00:00Z".parse().unwrap(),
            to: None,
            dry_run: false,
            rate: Some(50),
        }
    }

    fn rows(jobs: impl IntoIterator<Item = JobRecord>) -> Rows<JobCodec> {
        jobs.into_iter()
            .map(|j| (j.id.clone(), std::sync::Arc::new(j)))
            .collect()
    }

    #[test]
    fn ids_are_random_and_well_formed() {
        let (a, b) = (job_id(), job_id());
        assert_ne!(a, b);
        assert!(a.starts_with("job_") && a.len() == 4 + 32, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_hexdigit()), "{a}");
    }

    #[test]
    fn a_record_round_trips_and_answers_in_the_view_shape() {
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let mut job = JobRecord::new(spec("p", "d"), "replica-a", now);
        let raw = job.encode();
        let value: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(value["v"], 1);
        assert_eq!(value["owner"], "replica-a");
        assert_eq!(value["state"], "running");
        assert_eq!(value["rate"], 50);
        assert_eq!(JobCodec.value(&job.id, &raw).unwrap(), job);

        let mut summary = Summary::default();
        summary
            .destinations
            .insert(("p".into(), "d".into()), (30, 28, 2));
        job.finish(Ok(&summary), now + Duration::seconds(5));
        let back = JobCodec.value(&job.id, &job.encode()).unwrap();
        assert_eq!(back, job);
        let view = serde_json::to_value(back.view()).unwrap();
        let mut keys: Vec<&str> = view
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "created_at",
                "destination",
                "dry_run",
                "error",
                "events",
                "finished_at",
                "from",
                "id",
                "kind",
                "phase",
                "progress",
                "project",
                "state",
                "to"
            ],
            "the shape of today's JobView, nothing of the record's own (owner, rate)"
        );
        assert_eq!(view["state"], "completed");
        assert_eq!(view["phase"], "done");
        assert_eq!(
            view["events"],
            serde_json::json!({"routed": 30, "delivered": 28, "failed": 2})
        );
        assert_eq!(view["finished_at"], "2026-12-06T12:00:05Z");

        job.finish(Err("Kafka unreachable".into()), now);
        let view = serde_json::to_value(job.view()).unwrap();
        assert_eq!(
            (&view["state"], &view["events"]),
            (&"failed".into(), &serde_json::Value::Null)
        );
        assert_eq!(view["error"], "Kafka unreachable");
    }

    #[test]
    fn records_of_another_version_or_shape_are_refused_with_the_reason() {
        let job = JobRecord::new(spec("p", "d"), "r", Utc::now());
        let mut value: serde_json::Value = serde_json::from_slice(&job.encode()).unwrap();
        value["v"] = 2.into();
        let e = JobCodec
            .value(&job.id, &serde_json::to_vec(&value).unwrap())
            .unwrap_err();
        assert!(e.contains("version 2"), "{e}");
        let e = JobCodec.value(&job.id, b"{\"v\": 1}").unwrap_err();
        assert!(e.contains("not a job record"), "{e}");
        let e = JobCodec.value(&job.id, b"[").unwrap_err();
        assert!(e.contains("not a job record"), "{e}");
        let e = JobCodec
            .value(&"job_other".to_owned(), &job.encode())
            .unwrap_err();
        assert!(e.contains("not its key"), "{e}");
        assert_eq!(JobCodec.key(b""), None);
        assert_eq!(JobCodec.key(b"job_1").as_deref(), Some("job_1"));
    }

    #[test]
    fn the_newest_hundred_of_a_project_are_kept_and_running_ones_never_deleted() {
        let start: DateTime<Utc> = "2026-12-06T00:00:00Z".parse().unwrap();
        let mut jobs = Vec::new();
        for i in 0..KEEP_PER_PROJECT + 5 {
            let mut j = JobRecord::new(
                spec("p", &format!("d{i}")),
                "r",
                start + Duration::seconds(i as i64),
            );
            // The second oldest is still running: kept whatever its age.
            if i != 1 {
                j.finish(
                    Ok(&Summary::default()),
                    start + Duration::seconds(i as i64 + 1),
                );
            }
            jobs.push(j);
        }
        // Another project's old jobs are not counted nor deleted.
        let other = JobRecord::new(spec("q", "d"), "r", start - Duration::days(1));
        let mut all = jobs.clone();
        all.push(other.clone());
        let rows = rows(all);

        let mut deleted = beyond_kept(&rows, "p");
        deleted.sort();
        let mut want: Vec<String> = [0, 2, 3, 4].iter().map(|&i| jobs[i].id.clone()).collect();
        want.sort();
        assert_eq!(deleted, want, "the 5 oldest but the running one");
        assert!(beyond_kept(&rows, "q").is_empty());

        let listed = of_project(&rows, "p");
        assert_eq!(listed.len(), KEEP_PER_PROJECT + 5);
        assert_eq!(listed[0].id, jobs[KEEP_PER_PROJECT + 4].id, "newest first");
        assert!(listed
            .windows(2)
            .all(|w| w[0].created_at >= w[1].created_at));
    }

    #[test]
    fn the_smallest_live_replica_takes_the_jobs_of_replicas_gone_past_the_timeout() {
        let now: DateTime<Utc> = "2026-12-06T12:00:00Z".parse().unwrap();
        let timeout = std::time::Duration::from_secs(30);
        let old = now - Duration::seconds(31);
        let gone = JobRecord::new(spec("p", "d"), "replica-c", old);
        let mut finished = JobRecord::new(spec("p", "e"), "replica-c", old);
        finished.finish(Err("x".into()), old);
        let recent = JobRecord::new(spec("p", "f"), "replica-c", now - Duration::seconds(5));
        let live_owner = JobRecord::new(spec("p", "g"), "replica-b", old);
        let rows = rows([gone.clone(), finished, recent, live_owner]);
        let live = ["replica-a".to_owned(), "replica-b".to_owned()];

        let taken: Vec<&str> = abandoned(&rows, &live, "replica-a", now, timeout)
            .iter()
            .map(|j| j.id.as_str())
            .collect();
        assert_eq!(
            taken,
            [gone.id.as_str()],
            "gone, running and silent past the timeout"
        );
        assert!(
            abandoned(&rows, &live, "replica-b", now, timeout).is_empty(),
            "only the smallest live replica acts"
        );
    }

    #[test]
    fn one_replay_per_destination_the_earlier_wins() {
        let now = Utc::now();
        let first = JobRecord::new(spec("p", "d"), "a", now);
        let second = JobRecord::new(spec("p", "d"), "b", now + Duration::milliseconds(3));
        let elsewhere = JobRecord::new(spec("p", "e"), "a", now - Duration::seconds(1));
        let rows = rows([first.clone(), second.clone(), elsewhere.clone()]);
        assert_eq!(
            earlier_rival(&rows, &second).map(|j| &j.id),
            Some(&first.id)
        );
        assert!(
            earlier_rival(&rows, &first).is_none(),
            "the first keeps running"
        );
        assert!(earlier_rival(&rows, &elsewhere).is_none());
        assert!(running_for(&rows, "p", "d").is_some());

        let mut done = first.clone();
        done.finish(Err("stopped".into()), now);
        let rows = self::rows([done]);
        assert!(
            running_for(&rows, "p", "d").is_none(),
            "a finished job does not block"
        );
    }
}
