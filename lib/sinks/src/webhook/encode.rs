//! Request bodies of the webhook sink, built by concatenating the kept event bytes.

use bytes::Bytes;

use super::{Compression, WebhookFormat};
use crate::{batch_id, write_ndjson, DeliveryError, EncodedBatch};
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
    match format {
        WebhookFormat::JsonArray => {
            body.push(b'[');
            for (i, e) in events.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&e.raw);
            }
            body.push(b']');
        }
        WebhookFormat::Ndjson => write_ndjson(events, &mut body),
    }
    let uncompressed_bytes = body.len();
    let body = compression.apply(body)?;
    Ok(EncodedBatch {
        body: Bytes::from(body),
        id: batch_id(destination_key, events),
        events: events.len(),
        uncompressed_bytes,
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
