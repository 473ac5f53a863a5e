//! Object bodies: NDJSON of the unchanged events, gzipped by default; one object per Kafka
//! partition of a batch.

use std::ops::Range;

use bytes::Bytes;

use super::config::Compression;
use super::key::{object_time, ObjectInfo};
use crate::{gzip, write_ndjson, DeliveryError};
use courier_core::event::Event;

/// The events of one partition within a batch, in batch order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The partition.
    pub partition: i32,
    /// Indices into the batch, ascending.
    pub indices: Vec<usize>,
}

impl Group {
    /// The indices as one range, when they are contiguous in the batch.
    pub fn range(&self) -> Option<Range<usize>> {
        let first = *self.indices.first()?;
        let last = *self.indices.last()?;
        (last + 1 - first == self.indices.len()).then_some(first..last + 1)
    }

    /// Key facts of the group's object.
    pub fn info(&self, events: &[Event]) -> ObjectInfo {
        let offsets = self.indices.iter().map(|&i| events[i].offset);
        ObjectInfo {
            partition: self.partition,
            first_offset: offsets.clone().min().unwrap_or_default(),
            last_offset: offsets.max().unwrap_or_default(),
            time: object_time(self.indices.iter().map(|&i| &events[i])),
        }
    }
}

/// Groups a batch's events by partition, in order of each partition's first appearance.
pub fn group_by_partition(events: &[Event]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match groups.iter_mut().find(|g| g.partition == e.partition) {
            Some(g) => g.indices.push(i),
            None => groups.push(Group {
                partition: e.partition,
                indices: vec![i],
            }),
        }
    }
    groups
}

/// An object body: the events as NDJSON, compressed as configured. Returns the body and its
/// size before compression.
pub fn object_body<'a>(
    events: impl IntoIterator<Item = &'a Event>,
    compression: Compression,
) -> Result<(Bytes, usize), DeliveryError> {
    let events: Vec<&Event> = events.into_iter().collect();
    let mut body = Vec::with_capacity(events.iter().map(|e| e.raw.len() + 1).sum());
    for e in events {
        let _ = write_ndjson(std::slice::from_ref(e), &mut body);
    }
    let uncompressed = body.len();
    let body = match compression {
        Compression::None => body,
        Compression::Gzip => gzip(&body)?,
    };
    Ok((Bytes::from(body), uncompressed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn ev(partition: i32, offset: i64) -> Event {
        courier_core::event::test_event(
            Bytes::from(format!("{{\"o\":{offset}}}")),
            partition,
            offset,
        )
    }

    #[test]
    fn groups_by_partition_in_order_of_appearance() {
        let events = [ev(2, 10), ev(2, 11), ev(0, 5), ev(2, 12), ev(1, 7)];
        let groups = group_by_partition(&events);
        assert_eq!(
            groups,
            vec![
                Group {
                    partition: 2,
                    indices: vec![0, 1, 3]
                },
                Group {
                    partition: 0,
                    indices: vec![2]
                },
                Group {
                    partition: 1,
                    indices: vec![4]
                },
            ]
        );
        assert_eq!(groups[0].range(), None);
        assert_eq!(groups[1].range(), Some(2..3));
        let info = groups[0].info(&events);
        assert_eq!((info.first_offset, info.last_offset), (10, 12));
    }

    #[test]
    fn bodies_are_ndjson_gzipped_or_not() {
        let events = [ev(0, 1), ev(0, 2)];
        let (plain, n) = object_body(&events, Compression::None).unwrap();
        assert_eq!(&plain[..], b"{\"o\":1}\n{\"o\":2}\n");
        assert_eq!(n, plain.len());
        let (gz, n) = object_body(&events, Compression::Gzip).unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(text, plain);
        assert_eq!(n, plain.len());
    }
}
