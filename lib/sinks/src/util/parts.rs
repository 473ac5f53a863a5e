//! Batches that take several requests.
//!
//! A destination with request limits (Datadog: 1000 logs and 5 MB per request; Splunk HEC:
//! `max_request_bytes`) may need several requests for one batch. The `Sink` trait keeps one
//! [`EncodedBatch`](crate::EncodedBatch) per batch, encoded once and reused unchanged by
//! every retry, with a single `body`. So that retries stay byte-identical without encoding
//! again, a batch that needs several requests keeps all of their bodies, each exactly as it
//! will be sent, in that one `body`, framed:
//!
//! ```text
//! MAGIC, then per request: u32 LE event count, u32 LE body length, body
//! ```
//!
//! A body that fits in one request is stored as is (no framing): a request body never starts
//! with a NUL byte, which is how the two are told apart. The Datadog and Splunk HEC sinks both
//! use it, with the send loop of [`super::halving`].

use std::ops::Range;

use bytes::Bytes;

use crate::{DeliveryError, ErrorKind, Outcome};

/// Marks a framed body. A JSON or gzip request body never starts with a NUL byte.
const MAGIC: &[u8] = b"\0courier-requests-v1\0";

/// One request of a batch: which events it carries and its body, exactly as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Indices into the batch's events.
    pub events: Range<usize>,
    /// The request body.
    pub body: Bytes,
}

/// Frames the request bodies of a batch into one body; `parts` are in event order and
/// together cover the batch. A single part is returned unframed.
pub fn pack(parts: Vec<(usize, Vec<u8>)>) -> Vec<u8> {
    if parts.len() == 1 {
        return parts.into_iter().next().map(|(_, b)| b).unwrap_or_default();
    }
    let size = MAGIC.len() + parts.iter().map(|(_, b)| b.len() + 8).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(MAGIC);
    for (count, body) in parts {
        out.extend_from_slice(&u32::try_from(count).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&body);
    }
    out
}

/// The requests of an encoded batch of `events` events. `None` when the framing does not
/// match the batch (the caller then encodes again; never expected).
pub fn unpack(body: &Bytes, events: usize) -> Option<Vec<Part>> {
    let Some(mut rest) = body.strip_prefix(MAGIC) else {
        return Some(vec![Part {
            events: 0..events,
            body: body.clone(),
        }]);
    };
    let mut parts = Vec::new();
    let mut next = 0;
    while !rest.is_empty() {
        let count = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let len = u32::from_le_bytes(rest.get(4..8)?.try_into().ok()?) as usize;
        let start = body.len() - rest.len() + 8;
        rest.get(8..8 + len)?;
        parts.push(Part {
            events: next..next + count,
            body: body.slice(start..start + len),
        });
        next += count;
        rest = &rest[8 + len..];
    }
    (next == events && !parts.is_empty()).then_some(parts)
}

/// Requests still to send: the events each carries and its body (`None`: encode when sent).
pub type Work = Vec<(Range<usize>, Option<Bytes>)>;

/// A send loop's work for an encoded batch of `events` events: `(events, body)` per request,
/// last first (a loop pops the next one; it pushes `None` bodies for the halves of a refused
/// request, encoded when popped). When the encoding does not belong to the events (never
/// expected), `reencode` encodes them again; when that fails too, the outcome to answer.
pub fn work(
    body: &Bytes,
    events: usize,
    reencode: impl FnOnce() -> Option<Bytes>,
) -> Result<Work, Outcome> {
    let requests = unpack(body, events)
        .or_else(|| reencode().and_then(|b| unpack(&b, events)))
        .ok_or_else(|| Outcome::Retry {
            error: DeliveryError {
                kind: ErrorKind::Encode,
                http_status: None,
                message: "the encoded batch does not match its events".into(),
            },
            retry_after: None,
        })?;
    Ok(requests
        .into_iter()
        .rev()
        .map(|p| (p.events, Some(p.body)))
        .collect())
}

/// Splits items of the given sizes into consecutive requests of at most `max_items` items and
/// `max_bytes` bytes, where a request of items `a..b` weighs `overhead + sizes[a..b] + (b - a -
/// 1) * separator`. An item too large for any request travels alone.
pub fn plan(
    sizes: &[usize],
    max_items: usize,
    max_bytes: usize,
    overhead: usize,
    separator: usize,
) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut weight = overhead;
    for (i, &size) in sizes.iter().enumerate() {
        let added = if i == start { size } else { size + separator };
        if i > start && (i - start >= max_items || weight + added > max_bytes) {
            ranges.push(start..i);
            start = i;
            weight = overhead + size;
        } else {
            weight += added;
        }
    }
    if start < sizes.len() {
        ranges.push(start..sizes.len());
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_bodies_are_not_framed() {
        let body = pack(vec![(3, b"[1,2,3]".to_vec())]);
        assert_eq!(body, b"[1,2,3]");
        let parts = unpack(&Bytes::from(body), 3).unwrap();
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].events, 0..3);
        assert_eq!(&parts[0].body[..], b"[1,2,3]");
    }

    #[test]
    fn framed_bodies_round_trip() {
        let body = Bytes::from(pack(vec![
            (2, b"[1,2]".to_vec()),
            (1, vec![0x1f, 0x8b, 0, 0]),
            (3, b"{}{}{}".to_vec()),
        ]));
        let parts = unpack(&body, 6).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.events.clone(), p.body.to_vec()))
                .collect::<Vec<_>>(),
            vec![
                (0..2, b"[1,2]".to_vec()),
                (2..3, vec![0x1f, 0x8b, 0, 0]),
                (3..6, b"{}{}{}".to_vec()),
            ]
        );
        // A batch of another size does not match its framing.
        assert!(unpack(&body, 5).is_none());
        // Truncated framing is refused, not read out of bounds.
        assert!(unpack(&body.slice(..body.len() - 1), 6).is_none());
    }

    #[test]
    fn plans_by_count_and_bytes() {
        // Count limit.
        assert_eq!(plan(&[1; 5], 2, 1000, 2, 1), vec![0..2, 2..4, 4..5]);
        // Byte limit: [a,b] weighs 2 + 10 + 1 + 10 = 23.
        assert_eq!(plan(&[10; 4], 100, 23, 2, 1), vec![0..2, 2..4]);
        assert_eq!(plan(&[10; 4], 100, 22, 2, 1), vec![0..1, 1..2, 2..3, 3..4]);
        // An item larger than a request travels alone.
        assert_eq!(plan(&[5, 50, 5, 5], 100, 20, 2, 1), vec![0..1, 1..2, 2..4]);
        assert!(plan(&[], 10, 10, 2, 1).is_empty());
    }

    #[test]
    fn work_is_last_first_and_a_foreign_encoding_is_redone() {
        let framed = Bytes::from(pack(vec![(2, b"[a,b]".to_vec()), (1, b"[c]".to_vec())]));
        let work = work(&framed, 3, || panic!("not re-encoded")).unwrap();
        assert_eq!(
            work,
            vec![
                (2..3, Some(Bytes::from_static(b"[c]"))),
                (0..2, Some(Bytes::from_static(b"[a,b]")))
            ]
        );
        // Framed for 3 events, asked for 4: encoded again.
        let redone = super::work(&framed, 4, || Some(Bytes::from_static(b"[w,x,y,z]"))).unwrap();
        assert_eq!(redone, vec![(0..4, Some(Bytes::from_static(b"[w,x,y,z]")))]);
        match super::work(&framed, 4, || None) {
            Err(Outcome::Retry { error, .. }) => assert_eq!(error.kind, ErrorKind::Encode),
            other => panic!("{other:?}"),
        }
    }
}
