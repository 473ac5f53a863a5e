//! Replay ranges: `--from`/`--to` bounds (offsets, RFC 3339 times or relative times), resolved
//! to a half-open offset range per partition and checked against what each partition holds.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::consumer::Consumer;
use rdkafka::{Offset, TopicPartitionList};

use crate::source::ranges::PartitionRange;

/// One end of a range as the user wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// The same offset on every selected partition.
    Offset(i64),
    /// A point in time (message timestamps).
    Time(DateTime<Utc>),
    /// The end of each partition when the replay starts (`end`).
    End,
}

/// Reads `123` (offset), `2026-11-22T08:00:00Z` (time), `2h` (that long before `now`) or
/// `end` (what each partition holds when the replay starts).
pub fn parse_bound(text: &str, now: DateTime<Utc>) -> Result<Bound, String> {
    let text = text.trim();
    if text == "end" {
        return Ok(Bound::End);
    }
    if let Ok(offset) = text.parse::<i64>() {
        return if offset < 0 {
            Err(format!("{text:?}: an offset cannot be negative"))
        } else {
            Ok(Bound::Offset(offset))
        };
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Bound::Time(t.with_timezone(&Utc)));
    }
    if let Ok(ago) = humantime::parse_duration(text) {
        let ago = chrono::Duration::from_std(ago).map_err(|_| format!("{text:?}: too long ago"))?;
        return Ok(Bound::Time(now - ago));
    }
    Err(format!(
        "{text:?} is neither an offset (123), an RFC 3339 time (2026-11-22T08:00:00Z), a relative time (2h) nor end"
    ))
}

/// Refuses `from` after `to` when both are the same kind.
pub fn check_order(from: Bound, to: Bound) -> Result<(), String> {
    match (from, to) {
        (Bound::Offset(a), Bound::Offset(b)) if a > b => {
            Err(format!("--from offset {a} is after --to offset {b}"))
        }
        (Bound::Time(a), Bound::Time(b)) if a > b => Err(format!(
            "--from {} is after --to {}",
            a.to_rfc3339(),
            b.to_rfc3339()
        )),
        _ => Ok(()),
    }
}

const TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves the bounds on each partition of `topic`, checking offsets against what the
/// partition holds.
pub fn resolve<C: Consumer>(
    consumer: &C,
    topic: &str,
    partitions: &[i32],
    from: Bound,
    to: Bound,
) -> Result<Vec<PartitionRange>, String> {
    let mut ranges = Vec::new();
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, TIMEOUT)
            .map_err(|e| format!("partition {partition}: cannot read its offsets: {e}"))?;
        let at = |bound: Bound, name: &str| -> Result<i64, String> {
            match bound {
                Bound::Offset(o) if o < low || o > high => Err(format!(
                    "partition {partition} holds offsets [{low}, {high}); {name} {o} is outside it"
                )),
                Bound::Offset(o) => Ok(o),
                // Looked up by the watermark, not by time: "everything there is" must not
                // depend on clocks (and tansu answers a time after the last message with
                // offset 0 instead of the end).
                Bound::End => Ok(high),
                Bound::Time(t) => offset_for_time(consumer, topic, partition, t, high),
            }
        };
        let start = at(from, "--from")?;
        let end = at(to, "--to")?;
        if start > end {
            return Err(format!(
                "partition {partition}: --from resolves to offset {start}, after --to at {end}"
            ));
        }
        ranges.push(PartitionRange {
            partition,
            start,
            end,
        });
    }
    Ok(ranges)
}

/// The first offset whose timestamp is at or after `t` (the end of the partition if none).
fn offset_for_time<C: Consumer>(
    consumer: &C,
    topic: &str,
    partition: i32,
    t: DateTime<Utc>,
    high: i64,
) -> Result<i64, String> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(t.timestamp_millis()))
        .map_err(|e| e.to_string())?;
    let found = consumer
        .offsets_for_times(tpl, TIMEOUT)
        .map_err(|e| format!("partition {partition}: cannot look up offsets by time: {e}"))?;
    let offset = found
        .find_partition(topic, partition)
        .map(|e| e.offset())
        .unwrap_or(Offset::End);
    Ok(match offset {
        Offset::Offset(o) if o >= 0 => o,
        _ => high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn bounds_of_every_kind() {
        assert_eq!(parse_bound("120", now()), Ok(Bound::Offset(120)));
        assert_eq!(
            parse_bound("2026-11-22T08:00:00Z", now()),
            Ok(Bound::Time(
                DateTime::parse_from_rfc3339("2026-11-22T08:00:00Z")
                    .unwrap()
                    .with_timezone(&Utc)
            ))
        );
        assert_eq!(
            parse_bound("2h", now()),
            Ok(Bound::Time(now() - chrono::Duration::hours(2)))
        );
        assert_eq!(parse_bound(" end ", now()), Ok(Bound::End));
        assert!(parse_bound("-1", now()).unwrap_err().contains("negative"));
        assert!(parse_bound("yesterday", now())
            .unwrap_err()
            .contains("neither an offset"));
    }

    #[test]
    fn order_is_checked_for_like_bounds() {
        assert!(check_order(Bound::Offset(5), Bound::Offset(5)).is_ok());
        assert!(check_order(Bound::Offset(6), Bound::Offset(5))
            .unwrap_err()
            .contains("after"));
        let t = Bound::Time(now());
        let earlier = Bound::Time(now() - chrono::Duration::hours(1));
        assert!(check_order(earlier, t).is_ok());
        assert!(check_order(t, earlier).is_err());
        assert!(check_order(t, Bound::Offset(0)).is_ok(), "resolved later");
    }
}
