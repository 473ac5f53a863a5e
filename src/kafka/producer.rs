//! A Kafka producer whose deliveries are awaited, and which costs nothing while idle.
//!
//! Why not rdkafka's `FutureProducer`: its polling thread calls `BaseProducer::poll(100 ms)`
//! in a loop, and that call loops until its deadline, handing librdkafka the time left in
//! whole milliseconds. In the last millisecond that is 0, so the thread spins for it, every
//! 100 ms: measured at 0.85% of a core per producer on an idle courier (`perf` of the
//! thread: `__vdso_clock_gettime`, `Instant::sub` and `rd_kafka_q_pop_serve0` in a loop),
//! and courier has two or three of them (failure events, parking, the API's tables).
//! librdkafka fixed the same rounding in its own main loop (confluentinc/librdkafka#4671).
//!
//! This producer's thread polls while records are outstanding (queued, in flight, or with a
//! delivery report not yet served) and otherwise sleeps until a send wakes it, or a second
//! passes for librdkafka's error and log events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::OwnedHeaders;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::{ClientConfig, ClientContext, Message};
use tokio::sync::oneshot;

/// Where a record landed (partition, offset), or why it did not.
pub type Delivered = Result<(i32, i64), KafkaError>;

/// How long one poll waits while records are outstanding.
const BUSY_POLL: Duration = Duration::from_millis(100);
/// How long the thread sleeps between polls while nothing is outstanding.
const IDLE_POLL: Duration = Duration::from_secs(1);
/// How long a send waits before trying again when librdkafka's queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

/// Hands each delivery report to the send awaiting it.
struct Reports;

impl ClientContext for Reports {}

impl ProducerContext for Reports {
    type DeliveryOpaque = Box<oneshot::Sender<Delivered>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let delivered = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        // The send may have been dropped (its caller gave up): nobody to tell.
        let _ = tx.send(delivered);
    }
}

/// One record to produce.
pub struct Record<'a> {
    /// The topic.
    pub topic: &'a str,
    /// The key.
    pub key: &'a [u8],
    /// The value; `None` is a tombstone.
    pub payload: Option<&'a [u8]>,
    /// The headers.
    pub headers: Option<OwnedHeaders>,
}

/// A producer with its own polling thread (see the module doc).
pub struct KafkaProducer {
    shared: Arc<Shared>,
    poller: Option<JoinHandle<()>>,
}

struct Shared {
    producer: BaseProducer<Reports>,
    /// Set by a send, cleared by the thread when it wakes.
    sent: Mutex<bool>,
    wake: Condvar,
    stop: AtomicBool,
}

impl Shared {
    fn wake(&self) {
        *self.sent.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.wake.notify_one();
    }

    fn poll_until_stopped(&self) {
        while !self.stop.load(Ordering::Acquire) {
            if self.producer.in_flight_count() > 0 {
                self.producer.poll(BUSY_POLL);
                continue;
            }
            // Errors and logs of an idle producer.
            self.producer.poll(Duration::ZERO);
            let sent = self.sent.lock().unwrap_or_else(|p| p.into_inner());
            let (mut sent, _) = self
                .wake
                .wait_timeout_while(sent, IDLE_POLL, |sent| {
                    !*sent && !self.stop.load(Ordering::Acquire)
                })
                .unwrap_or_else(|p| p.into_inner());
            *sent = false;
        }
    }
}

impl KafkaProducer {
    /// A producer with `config`.
    pub fn create(config: &ClientConfig) -> KafkaResult<Self> {
        Self::with_thread_name(config, "kafka producer")
    }

    /// A producer with `config` whose polling thread is called `name`.
    fn with_thread_name(config: &ClientConfig, name: &str) -> KafkaResult<Self> {
        let producer: BaseProducer<Reports> = config.create_with_context(Reports)?;
        let shared = Arc::new(Shared {
            producer,
            sent: Mutex::new(false),
            wake: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let poller = std::thread::Builder::new()
            .name(name.into())
            .spawn({
                let shared = shared.clone();
                move || shared.poll_until_stopped()
            })
            .map_err(|e| KafkaError::ClientCreation(format!("cannot start its thread: {e}")))?;
        Ok(KafkaProducer {
            shared,
            poller: Some(poller),
        })
    }

    /// Produces `record` and waits for the broker's answer. While librdkafka's queue is full,
    /// tries again for up to `queue_timeout`.
    pub async fn send(&self, record: Record<'_>, queue_timeout: Duration) -> Delivered {
        let start = Instant::now();
        let (tx, rx) = oneshot::channel();
        let mut base = BaseRecord::with_opaque_to(record.topic, Box::new(tx)).key(record.key);
        if let Some(payload) = record.payload {
            base = base.payload(payload);
        }
        if let Some(headers) = record.headers {
            base = base.headers(headers);
        }
        loop {
            match self.shared.producer.send(base) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if start.elapsed() < queue_timeout =>
                {
                    base = back;
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
        self.shared.wake();
        // A report is always served before the producer is dropped (it purges and flushes);
        // a closed channel would mean it was not.
        rx.await.unwrap_or(Err(KafkaError::Canceled))
    }

    /// Waits up to `timeout` for every outstanding record.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.shared.producer.flush(timeout)
    }

    /// The cluster's metadata (of `topic` only, when given). Blocking.
    pub fn fetch_metadata(&self, topic: Option<&str>, timeout: Duration) -> KafkaResult<Metadata> {
        self.shared.producer.client().fetch_metadata(topic, timeout)
    }
}

impl Drop for KafkaProducer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        self.shared.wake();
        if let Some(poller) = self.poller.take() {
            if poller.join().is_err() {
                tracing::warn!("the Kafka producer's polling thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A producer whose broker refuses every connection (port 9, discard, closed here), its
    /// thread called `thread` (other tests of this process have producers too).
    fn unreachable(message_timeout_ms: &str, thread: &str) -> KafkaProducer {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:9")
            .set("message.timeout.ms", message_timeout_ms)
            .set("log_level", "0");
        KafkaProducer::with_thread_name(&config, thread).unwrap()
    }

    /// Nanoseconds on CPU of this process's threads named `name`.
    fn cpu_of_threads(name: &str) -> u64 {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let dir = t.ok()?.path();
                let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
                (comm.trim_end() == name).then(|| {
                    let stat = std::fs::read_to_string(dir.join("schedstat")).unwrap();
                    stat.split_whitespace()
                        .next()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                })
            })
            .sum()
    }

    /// rdkafka's own polling thread spins in the last millisecond of every 100 ms poll
    /// (about 17 ms of CPU in 2 s when measured); this one sleeps while nothing is
    /// outstanding. The bound is far above what a few wake-ups cost, far below the spin.
    #[test]
    fn an_idle_producer_does_not_spin() {
        let producer = unreachable("1000", "idle producer");
        std::thread::sleep(Duration::from_millis(300));
        let before = cpu_of_threads("idle producer");
        std::thread::sleep(Duration::from_secs(2));
        let used = cpu_of_threads("idle producer") - before;
        assert!(
            used < 5_000_000,
            "the idle producer's thread used {used} ns of CPU in 2 s"
        );
        drop(producer);
    }

    /// A send wakes the sleeping thread, which serves the delivery report: here the broker is
    /// unreachable, so the report is the message's timeout, well before the idle poll's second
    /// would have come round twice.
    #[tokio::test]
    async fn a_send_is_answered_by_its_delivery_report() {
        let producer = unreachable("200", "kafka producer");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let record = Record {
            topic: "t",
            key: b"k",
            payload: Some(b"v"),
            headers: None,
        };
        let answered = tokio::time::timeout(
            Duration::from_secs(10),
            producer.send(record, Duration::from_secs(1)),
        )
        .await
        .expect("the delivery report arrives");
        assert!(
            matches!(
                answered,
                Err(KafkaError::MessageProduction(
                    RDKafkaErrorCode::MessageTimedOut
                ))
            ),
            "{answered:?}"
        );
        // The report's event is freed just after its callback answered the send: nothing is
        // outstanding a moment later (the thread then goes back to sleep).
        let outstanding = std::time::Instant::now();
        while producer.shared.producer.in_flight_count() > 0 {
            assert!(
                outstanding.elapsed() < Duration::from_secs(5),
                "a served report still counts as outstanding"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
