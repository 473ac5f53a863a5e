//! Request bodies of the webhook sink, built by concatenating the kept event bytes.

use bytes::Bytes;

use super::{Compression, WebhookFormat};
use crate::{batch_id, write_ndjson, DeliveryError, EncodedBatch, Verbatim};
use courier_core::event::Event;

/// Encodes a batch: the events' JSON unchanged, as an array or one per line, gzipped if asked.
pub fn encode(
    events: &[Event],
    format: WebhookFormat,
    compression: Compression,
    destination_key: &str,
) -> Result<EncodedBatch, DeliveryError> {
    let size: usize = events.iter().map(|e| e.raw.len() + 1).sum::<usize>() + 2;
    let mut body = Vec::with_capacity(size);
    let verbatim = match format {
        WebhookFormat::JsonArray => {
            body.push(b'[');
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&e.raw);
            }
            body.push(b']');
            Some(Verbatim { start: 1, gap: 1 })
        }
        WebhookFormat::Ndjson => {
            write_ndjson(events, &mut body).then_some(Verbatim { start: 0, gap: 1 })
        }
    };
    let uncompressed_bytes = body.len();
    let verbatim = verbatim.filter(|_| compression == Compression::None);
    let body = compression.apply(body)?;
    Ok(EncodedBatch {
        body: Bytes::from(body),
        id: batch_id(destination_key, events),
        events: events.len(),
        uncompressed_bytes,
        verbatim,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_core::event::AckId;
    use std::io::Read;

    fn events() -> Vec<Event> {
        [r#"{"a":1}"#, r#"{"b":"x"}"#]
            .iter()
            .enumerate()
            .map(|(i, raw)| Event {
                raw: Bytes::from_static(raw.as_bytes()),
                partition: 0,
                offset: i as i64,
                failure_event: false,
                ack: AckId {
                    partition: 0,
                    generation: 1,
                    offset: i as i64,
                },
            })
            .collect()
    }

    #[test]
    fn json_array_concatenates_the_raw_events() {
        let b = encode(&events(), WebhookFormat::JsonArray, Compression::None, "k").unwrap();
        assert_eq!(&b.body[..], br#"[{"a":1},{"b":"x"}]"#);
        assert_eq!(b.events, 2);
        assert_eq!(b.uncompressed_bytes, b.body.len());
    }

    /// Whether every event now reads its own bytes, unchanged, from inside the body.
    fn shares(body: &Bytes, before: &[Event], after: &[Event]) -> bool {
        let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        before.iter().zip(after).all(|(b, a)| {
            a.raw == b.raw
                && range.contains(&(a.raw.as_ptr() as usize))
                && a.raw.as_ptr() as usize + a.raw.len() <= range.end
        })
    }

    #[test]
    fn a_plain_body_holds_the_events_byte_for_byte() {
        for format in [WebhookFormat::JsonArray, WebhookFormat::Ndjson] {
            let original = events();
            let b = encode(&original, format, Compression::None, "k").unwrap();
            let mut events = original.clone();
            assert!(b.share_body(&mut events), "{format:?}");
            assert!(shares(&b.body, &original, &events), "{format:?}");
            // Offsets and acknowledgements are untouched.
            assert_eq!(events[1].ack, original[1].ack);
        }
    }

    #[test]
    fn a_body_that_does_not_hold_the_events_as_they_are_is_not_shared() {
        let mut pretty = events();
        pretty[1].raw = Bytes::from_static(b"{\n \"b\": \"x\"\n}");
        let b = encode(&pretty, WebhookFormat::Ndjson, Compression::None, "k").unwrap();
        assert_eq!(b.verbatim, None, "a compacted event changed its bytes");
        let mut copy = pretty.clone();
        assert!(!b.share_body(&mut copy));
        assert_eq!(copy[1].raw, pretty[1].raw);

        let b = encode(&events(), WebhookFormat::JsonArray, Compression::Gzip, "k").unwrap();
        assert_eq!(b.verbatim, None, "a compressed body");
        assert!(!b.share_body(&mut events()));

        // Other events than the body's: the lengths do not add up, nothing changes.
        let b = encode(&events(), WebhookFormat::JsonArray, Compression::None, "k").unwrap();
        let mut longer = events();
        longer[0].raw = Bytes::from(vec![b' '; 64]);
        assert!(!b.share_body(&mut longer));
        assert!(!b.share_body(&mut events()[..1]));
    }

    #[test]
    fn ndjson_gzip_round_trips() {
        let b = encode(&events(), WebhookFormat::Ndjson, Compression::Gzip, "k").unwrap();
        let mut text = String::new();
        flate2::read::GzDecoder::new(&b.body[..])
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "{\"a\":1}\n{\"b\":\"x\"}\n");
        assert_eq!(b.uncompressed_bytes, text.len());
    }
}
