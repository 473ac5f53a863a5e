//! The parker against tansu: two park calls made at the same moment for one destination
//! must each start a Kafka record batch, because the retry worker rewinds a waiting
//! partition to a call's first record and tansu skips the rest of a batch fetched from its
//! middle (TESTING.md quirk 2). Without that, the second call's events were never re-read
//! and stayed parked for ever.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use courier::event::Event;
use courier::parking::{ParkRequest, Parker};
use courier::source::Acker;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

const RETRY: &str = "courier-retry";

fn events(acker: &Acker, prefix: &str, first_offset: i64) -> Vec<Event> {
    (0..3)
        .map(|i| Event {
            raw: Bytes::from(format!("{{\"id\":\"{prefix}{i}\",\"projectId\":\"p\"}}")),
            partition: 0,
            offset: first_offset + i,
            failure_event: false,
            ack: acker.track(0, first_offset + i, 1),
        })
        .collect()
}

/// Values read from `partition` starting at `offset` until nothing new arrives.
fn read_from(brokers: &str, partition: i32, offset: i64) -> Vec<String> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("parking-reader-{}", unique_number()))
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "5")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(RETRY, partition, Offset::Offset(offset))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut last_new = std::time::Instant::now();
    while last_new.elapsed() < Duration::from_secs(3) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(50)) {
            out.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
            last_new = std::time::Instant::now();
        }
    }
    out
}

#[test]
fn every_park_call_can_be_read_again_from_its_first_record() {
    let tansu = Tansu::start();
    let brokers = tansu.brokers();
    let text = format!(
        r#"
[kafka]
brokers = "{brokers}"
[failures]
retry_topic = "{RETRY}"
retry_topic_partitions = 2
[[destinations]]
project = "p"
id = "d"
type = "webhook"
url = "https://hooks.example.com/courier"
"#
    );
    let config = courier::config::parse("parking-test.toml", &text, &BTreeMap::new()).unwrap();
    let acker = Acker::new();
    let (first, second) = (events(&acker, "a", 0), events(&acker, "b", 3));
    rt().block_on(async {
        let partitions = courier::kafka::ensure_topic(&config, RETRY, 2, false)
            .await
            .unwrap();
        assert_eq!(partitions, 2);
        let parker = Arc::new(Parker::new(&config, partitions, CancellationToken::new()).unwrap());
        let request = |events| ParkRequest {
            project: "p",
            destination: "d",
            attempt: 1,
            delay: Duration::from_secs(60),
            first_failure: chrono::Utc::now(),
            last_error: "HTTP 503",
            events,
            source_topic: "event-logs",
        };
        // Both calls are queued within the producer's linger: before the fix they shared
        // a record batch.
        let (ra, rb) = (request(&first), request(&second));
        let (a, b) = tokio::join!(parker.park(&ra), parker.park(&rb));
        a.unwrap();
        b.unwrap();
    });

    let all = read_all(&brokers, RETRY, Duration::from_secs(3));
    assert_eq!(all.len(), 6, "six parked records: {all:?}");
    let partition = all[0].0;
    assert!(
        all.iter().all(|(p, _, _)| *p == partition),
        "one destination and attempt share a partition: {all:?}"
    );
    for prefix in ["a", "b"] {
        let (_, start, _) = all
            .iter()
            .find(|(_, _, v)| String::from_utf8_lossy(v).contains(&format!("\"{prefix}0\"")))
            .unwrap_or_else(|| panic!("the first record of call {prefix} was written"));
        let read = read_from(&brokers, partition, *start);
        for i in 0..3 {
            let id = format!("\"{prefix}{i}\"");
            assert!(
                read.iter().any(|v| v.contains(&id)),
                "reading from offset {start} (the first record of call {prefix}) returns {id}; read {read:?}"
            );
        }
    }
}
