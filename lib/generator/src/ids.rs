//! Small inline strings and the deterministic ids, UUIDs and timestamps built in them.

use super::*;

/// A short string stored inline (ids, UUIDs, timestamps), serialized as a JSON string.
#[derive(Clone, Copy)]
pub(crate) struct SmallStr {
    pub(crate) len: u8,
    pub(crate) buf: [u8; SmallStr::CAP],
}

impl SmallStr {
    pub(crate) const CAP: usize = 63;

    pub(crate) fn new() -> Self {
        SmallStr {
            len: 0,
            buf: [0; Self::CAP],
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Write for SmallStr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let len = usize::from(self.len);
        let end = len + s.len();
        if end > Self::CAP {
            return Err(fmt::Error);
        }
        self.buf[len..end].copy_from_slice(s.as_bytes());
        self.len = end as u8;
        Ok(())
    }
}

impl fmt::Debug for SmallStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for SmallStr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

pub(crate) fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(0..items.len())]
}

/// An index drawn according to cumulative weights.
pub(crate) fn pick_weighted(rng: &mut fastrand::Rng, cumulative: &[u32]) -> usize {
    let total = *cumulative.last().expect("non-empty weights");
    let r = rng.u32(0..total);
    cumulative.partition_point(|&c| c <= r)
}

pub(crate) const DOMAIN_PERSONA: u64 = 0x7065_7273_6f6e_6100;
pub(crate) const DOMAIN_CREDENTIAL: u64 = 0x6372_6564_0000_0001;
pub(crate) const DOMAIN_CREDENTIAL_CONFIG: u64 = 0x6363_6667_0000_0002;
pub(crate) const DOMAIN_WORKFLOW: u64 = 0x776b_666c_0000_0003;
pub(crate) const DOMAIN_WEBHOOK: u64 = 0x686f_6f6b_0000_0004;
pub(crate) const DOMAIN_SYNC: u64 = 0x7379_6e63_0000_0005;

pub(crate) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A UUID-like id that depends only on its inputs.
pub(crate) fn derived_uuid(seed: u64, domain: u64, a: u64, b: u64, c: u64) -> SmallStr {
    let h = mix(mix(mix(mix(seed ^ domain) ^ a) ^ b) ^ c);
    format_uuid(h, mix(h ^ domain))
}

pub(crate) fn random_uuid(rng: &mut fastrand::Rng) -> SmallStr {
    format_uuid(rng.u64(..), rng.u64(..))
}

/// Formats 128 bits as a version-4 UUID.
pub(crate) fn format_uuid(hi: u64, lo: u64) -> SmallStr {
    pub(crate) const HEX: &[u8; 16] = b"0123456789abcdef";
    let hi = (hi & !0xF000) | 0x4000;
    let lo = (lo & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000;
    let mut s = SmallStr::new();
    let mut pos = 0;
    for (i, word) in [hi, lo].into_iter().enumerate() {
        for nibble in 0..16 {
            if matches!(i * 16 + nibble, 8 | 12 | 16 | 20) {
                s.buf[pos] = b'-';
                pos += 1;
            }
            s.buf[pos] = HEX[((word >> (60 - nibble * 4)) & 0xF) as usize];
            pos += 1;
        }
    }
    s.len = pos as u8;
    s
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `(year, month, day)` of a day count since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// RFC 3339 UTC with milliseconds: `2026-11-01T00:00:00.000Z`.
pub(crate) fn format_timestamp(ms: i64) -> SmallStr {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    if !(0..=9999).contains(&y) {
        return small!("{y:04}-{m:02}-{d:02}T00:00:00.000Z");
    }
    let mut s = SmallStr::new();
    s.buf[..24].copy_from_slice(b"0000-00-00T00:00:00.000Z");
    let mut put = |end: usize, mut value: i64, digits: usize| {
        for i in 0..digits {
            s.buf[end - i - 1] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(4, y, 4);
    put(7, m, 2);
    put(10, d, 2);
    put(13, rem / 3_600_000, 2);
    put(16, rem / 60_000 % 60, 2);
    put(19, rem / 1000 % 60, 2);
    put(23, rem % 1000, 3);
    s.len = 24;
    s
}
