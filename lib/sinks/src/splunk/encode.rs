//! Request bodies of the Splunk HEC sink: event objects concatenated (no array, no
//! separators), each wrapping the kept event bytes unchanged:
//!
//! ```text
//! {"time":1793491200.123,"host":"h","source":"s","sourcetype":"_json","index":"i",
//!  "fields":{"projectId":"p","type":"t","level":"INFO","integrationId":"x"},"event":<event>}
//! ```
//!
//! Only the fields the envelope needs are read, from the top level of the event (values are
//! located, not parsed: [`crate::util::members`]); the event itself is embedded byte
//! for byte. A batch larger than `max_request_bytes` is split into
//! several requests ([`crate::util::parts`]); an event larger than that travels
//! alone.

use std::borrow::Cow;
use std::ops::Range;

use bytes::Bytes;

use crate::util::members::{self, string_value};
use crate::util::{not_a_json_object, parts, Compression};
use crate::{batch_id, DeliveryError, EncodedBatch};
use courier_core::event::Event;

/// Builds HEC event objects and request bodies.
#[derive(Debug, Clone)]
pub struct Encoder {
    /// `"host":…,"source":…,"sourcetype":…,"index":…`, the same for every event.
    metadata: String,
    compression: Compression,
    max_request_bytes: usize,
}

/// The event is not a JSON object (not expected: only objects are routed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAnObject;

impl Encoder {
    /// An encoder with this metadata; requests of at most `max_request_bytes` (uncompressed).
    pub fn new(
        host: Option<&str>,
        source: Option<&str>,
        sourcetype: &str,
        index: Option<&str>,
        compression: Compression,
        max_request_bytes: usize,
    ) -> Self {
        let mut metadata = Vec::new();
        for (key, value) in [
            ("host", host),
            ("source", source),
            ("sourcetype", Some(sourcetype)),
            ("index", index),
        ] {
            if let Some(v) = value {
                if !metadata.is_empty() {
                    metadata.push(b',');
                }
                push_json_str(&mut metadata, key);
                metadata.push(b':');
                push_json_str(&mut metadata, v);
            }
        }
        Self {
            metadata: String::from_utf8(metadata).expect("JSON text of strings is UTF-8"),
            compression,
            max_request_bytes,
        }
    }

    /// Appends the HEC event object of one event to `out`.
    pub fn event(&self, raw: &[u8], out: &mut Vec<u8>) -> Result<(), NotAnObject> {
        let raw = raw.trim_ascii();
        let object = members::scan(raw).map_err(|_| NotAnObject)?;
        // The envelope's fields, read from the top level only (values are not parsed).
        let mut fields: [Option<Cow<'_, str>>; 5] = Default::default();
        for m in &object.members {
            let slot = match m.key.as_ref() {
                "projectId" => 0,
                "type" => 1,
                "level" => 2,
                "integrationId" => 3,
                "timestamp" => 4,
                _ => continue,
            };
            fields[slot] = string_value(&raw[m.value.clone()]);
        }
        let [project, kind, level, integration, timestamp] = fields;
        out.push(b'{');
        if let Some(ms) = timestamp
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis())
        {
            out.extend_from_slice(
                format!(
                    "\"time\":{}.{:03},",
                    ms.div_euclid(1000),
                    ms.rem_euclid(1000)
                )
                .as_bytes(),
            );
        }
        out.extend_from_slice(self.metadata.as_bytes());
        let indexed = [
            ("projectId", project.as_deref()),
            ("type", kind.as_deref()),
            ("level", level.as_deref()),
            ("integrationId", integration.as_deref()),
        ];
        if indexed.iter().any(|(_, v)| v.is_some()) {
            out.extend_from_slice(b",\"fields\":{");
            let mut first = true;
            for (key, value) in indexed {
                if let Some(v) = value {
                    if !first {
                        out.push(b',');
                    }
                    first = false;
                    push_json_str(out, key);
                    out.push(b':');
                    push_json_str(out, v);
                }
            }
            out.push(b'}');
        }
        out.extend_from_slice(b",\"event\":");
        out.extend_from_slice(raw);
        out.push(b'}');
        Ok(())
    }

    /// Encodes a batch: one request body, or several framed ([`parts`]) when it exceeds
    /// `max_request_bytes`.
    pub fn batch(
        &self,
        events: &[Event],
        destination_key: &str,
    ) -> Result<EncodedBatch, DeliveryError> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.raw.len() + 200).sum());
        let mut spans: Vec<Range<usize>> = Vec::with_capacity(events.len());
        for e in events {
            let start = body.len();
            self.event(&e.raw, &mut body)
                .map_err(|_| not_a_json_object(e))?;
            spans.push(start..body.len());
        }
        let sizes: Vec<usize> = spans.iter().map(Range::len).collect();
        let ranges = parts::plan(&sizes, usize::MAX, self.max_request_bytes, 0, 0);
        let uncompressed_bytes = body.len();
        let body = if ranges.len() <= 1 {
            self.compression.apply(body)?
        } else {
            let mut requests = Vec::with_capacity(ranges.len());
            for r in ranges {
                let bytes = &body[spans[r.start].start..spans[r.end - 1].end];
                let part = self.compression.apply(bytes.to_vec())?;
                requests.push((r.len(), part));
            }
            parts::pack(requests)
        };
        Ok(EncodedBatch {
            body: Bytes::from(body),
            id: batch_id(destination_key, events),
            events: events.len(),
            uncompressed_bytes,
            verbatim: None,
        })
    }

    /// One request body holding exactly these events (after the collector refused a request
    /// as too large).
    pub fn request(&self, events: &[Event]) -> Result<Bytes, DeliveryError> {
        let mut body = Vec::with_capacity(events.iter().map(|e| e.raw.len() + 200).sum());
        for e in events {
            self.event(&e.raw, &mut body)
                .map_err(|_| not_a_json_object(e))?;
        }
        self.compression.apply(body).map(Bytes::from)
    }
}

fn push_json_str(out: &mut Vec<u8>, s: &str) {
    serde_json::to_writer(&mut *out, s).expect("writing a string to a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use serde_json::Value;

    use super::*;

    fn ev(raw: &str, offset: i64) -> Event {
        courier_core::event::test_event(Bytes::copy_from_slice(raw.as_bytes()), 0, offset)
    }

    fn enc(compression: Compression, max: usize) -> Encoder {
        Encoder::new(None, None, "_json", None, compression, max)
    }

    /// Splits a body of concatenated JSON objects.
    fn objects(body: &[u8]) -> Vec<Value> {
        serde_json::Deserializer::from_slice(body)
            .into_iter::<Value>()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    const EVENT: &str = "{\"timestamp\":\"2026-11-01T00:00:00.123Z\",\"level\":\"ERROR\",\"type\":\"APP_EVENT\",\"message\":\"caf\u{e9} \\\"q\\\" \\n \\u0001\",\"projectId\":\"proj_\u{e9}\",\"integrationId\":\"hubspot\",\"payload\":{\"x\":[1,2.50,true]}}";

    #[test]
    fn events_are_wrapped_byte_for_byte() {
        let e = Encoder::new(
            Some("h"),
            Some("src"),
            "st",
            Some("main"),
            Compression::None,
            1 << 20,
        );
        let mut out = Vec::new();
        e.event(EVENT.as_bytes(), &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "{{\"time\":1793491200.123,\"host\":\"h\",\"source\":\"src\",\"sourcetype\":\"st\",\"index\":\"main\",\"fields\":{{\"projectId\":\"proj_\u{e9}\",\"type\":\"APP_EVENT\",\"level\":\"ERROR\",\"integrationId\":\"hubspot\"}},\"event\":{EVENT}}}"
            )
        );
    }

    #[test]
    fn times_have_millisecond_decimals() {
        let e = enc(Compression::None, 1 << 20);
        for (ts, time) in [
            ("2026-11-01T00:00:00Z", "1793491200.000"),
            ("2026-11-01T00:00:00.5+01:00", "1793487600.500"),
            ("1969-12-31T23:59:59.999Z", "-1.999"),
        ] {
            let mut out = Vec::new();
            e.event(format!("{{\"timestamp\":\"{ts}\"}}").as_bytes(), &mut out)
                .unwrap();
            let text = String::from_utf8(out).unwrap();
            assert!(text.starts_with(&format!("{{\"time\":{time},")), "{text}");
        }
        // No readable time: Splunk stamps the event on arrival.
        let mut out = Vec::new();
        e.event(b" {\"timestamp\":\"soon\",\"level\":3}\n", &mut out)
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"sourcetype\":\"_json\",\"event\":{\"timestamp\":\"soon\",\"level\":3}}"
        );
        assert_eq!(e.event(b"[1]", &mut Vec::new()), Err(NotAnObject));
    }

    #[test]
    fn batches_concatenate_and_split_by_size() {
        let events: Vec<Event> = (0..10)
            .map(|i| {
                ev(
                    &format!(
                        "{{\"projectId\":\"p\",\"message\":\"{}\"}}",
                        "m".repeat(100 + i)
                    ),
                    i as i64,
                )
            })
            .collect();
        let one = enc(Compression::None, 1 << 20).batch(&events, "k").unwrap();
        let all = objects(&one.body);
        assert_eq!(all.len(), 10);
        assert_eq!(all[3]["event"]["message"], "m".repeat(103));
        assert_eq!(one.uncompressed_bytes, one.body.len());

        let size = one.body.len() / 10 + 10;
        let split = enc(Compression::None, size * 3)
            .batch(&events, "k")
            .unwrap();
        let requests = parts::unpack(&split.body, 10).unwrap();
        assert_eq!(
            requests
                .iter()
                .map(|p| p.events.clone())
                .collect::<Vec<_>>(),
            vec![0..3, 3..6, 6..9, 9..10]
        );
        let mut joined = Vec::new();
        for p in &requests {
            assert!(p.body.len() <= size * 3);
            assert_eq!(objects(&p.body).len(), p.events.len());
            joined.extend_from_slice(&p.body);
        }
        assert_eq!(joined, one.body.to_vec());
        // An event larger than a request travels alone.
        let tiny = enc(Compression::None, 10).batch(&events[..3], "k").unwrap();
        assert_eq!(parts::unpack(&tiny.body, 3).unwrap().len(), 3);
    }

    #[test]
    fn gzip_round_trips() {
        let events = vec![ev(EVENT, 0), ev("{\"projectId\":\"p\"}", 1)];
        let b = enc(Compression::Gzip, 1 << 20).batch(&events, "k").unwrap();
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(&b.body[..])
            .read_to_end(&mut text)
            .unwrap();
        assert_eq!(b.uncompressed_bytes, text.len());
        let all = objects(&text);
        assert_eq!(all[0]["event"]["message"], "café \"q\" \n \u{1}");
        assert_eq!(all[1]["fields"]["projectId"], "p");
        let split = enc(Compression::Gzip, 300).batch(&events, "k").unwrap();
        for p in parts::unpack(&split.body, 2).unwrap() {
            assert_eq!(&p.body[..2], &[0x1f, 0x8b]);
        }
    }

    /// Measures event wrapping and whole batches
    /// (`cargo test --release --lib sinks::splunk::encode::tests::measure -- --ignored --nocapture`).
    #[test]
    #[ignore]
    fn measure() {
        use courier_generator::{Generator, GeneratorConfig};
        let mut gen = Generator::new(GeneratorConfig {
            seed: 1,
            projects: 3,
            poison_every: None,
            target_bytes: Some(1024),
        });
        let events: Vec<Event> = (0..20_000)
            .map(|i| ev(std::str::from_utf8(&gen.next_event()).unwrap(), i))
            .collect();
        let bytes: usize = events.iter().map(|e| e.raw.len()).sum();
        let mb = bytes as f64 / 1e6;
        for (name, compression) in [("none", Compression::None), ("gzip", Compression::Gzip)] {
            let e = enc(compression, 1 << 20);
            let t = std::time::Instant::now();
            let mut out = 0;
            for chunk in events.chunks(1000) {
                out += e.batch(chunk, "k").unwrap().body.len();
            }
            let took = t.elapsed();
            println!(
                "splunk batches of 1000, compression {name}: {:.0} MB/s of events ({:.2} µs/event), {out} bytes out",
                mb / took.as_secs_f64(),
                took.as_secs_f64() * 1e6 / events.len() as f64
            );
        }
    }
}
