//! A destination's settings as the sinks see them: which sink ([`SinkConfig`], one variant per
//! sink folder) and the settings shared by every sink (filter, delivery).
//!
//! These types name every sink, so they live here, above each sink's own settings and below
//! the daemon's loader, which reads them from the file or the API and checks them.

use std::fmt;
use std::sync::Arc;

use serde_json::Value;

use courier_core::daily_cap::DailyCap;
use courier_core::routing::FilterConfig;
use courier_core::settings::DeliveryConfig;
use courier_core::shape::{Sample, Shaper};

use crate::datadog::DatadogConfig;
use crate::email::EmailConfig;
use crate::file::FileConfig;
use crate::otlp::OtlpConfig;
use crate::s3::S3Config;
use crate::splunk::SplunkConfig;
use crate::webhook::WebhookConfig;

/// One `[[destinations]]` table.
#[derive(Debug, Clone)]
pub struct DestinationConfig {
    /// The projectId whose events this destination receives.
    pub project: String,
    /// Unique within the project.
    pub id: String,
    /// Disabled destinations receive nothing.
    pub enabled: bool,
    /// The sink and its settings.
    pub sink: SinkConfig,
    /// Which events of the project it receives.
    pub filter: FilterConfig,
    /// Batching and retry settings.
    pub delivery: DeliveryConfig,
    /// Redaction and field selection (the destination's rules, then the operator's
    /// `[redact]`), applied to each batch right before it is encoded; `None` keeps the
    /// byte-identical fast path.
    pub shape: Option<Arc<Shaper>>,
    /// `sample`: the fraction of each level's events kept; `None` keeps every event.
    pub sample: Option<Sample>,
    /// `daily_cap`: most events/bytes of live traffic sent per UTC day (per replica).
    pub daily_cap: Option<DailyCap>,
    /// `rate_limit` with the operator's ceiling applied (the ceiling alone when the
    /// destination has none); `None`: sent as fast as the destination answers.
    pub rate_limit: Option<RateLimit>,
    /// The destination's table as read (after interpolation): a reload rebuilds the
    /// destination when this or its delivery settings change.
    pub table: RawTable,
}

/// A destination's effective rates: token buckets the lane and the retry worker draw from
/// before each request. Each bucket holds `burst` of its own cells (events or requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Events per second, and the bucket's size in events.
    pub events: Option<Bucket>,
    /// Requests per second, and the bucket's size in requests.
    pub requests: Option<Bucket>,
}

/// One token bucket: `per_second` cells refilled each second, at most `burst` held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// Cells per second (at least 1).
    pub per_second: u32,
    /// Cells the bucket holds (at least 1).
    pub burst: u32,
}

/// A destination's table as read. It holds secrets, so it never prints.
#[derive(Clone, PartialEq)]
pub struct RawTable(pub Value);

impl fmt::Debug for RawTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RawTable(…)")
    }
}

impl DestinationConfig {
    /// Whether `other` configures this destination differently.
    pub fn differs_from(&self, other: &DestinationConfig) -> bool {
        self.table != other.table
            || self.delivery != other.delivery
            || self.shape != other.shape
            || self.sample != other.sample
    }
}

/// The type-specific part of a destination.
#[derive(Debug, Clone)]
pub enum SinkConfig {
    /// `type = "webhook"`.
    Webhook(WebhookConfig),
    /// `type = "file"`.
    File(FileConfig),
    /// `type = "s3"`.
    S3(S3Config),
    /// `type = "datadog"`.
    Datadog(DatadogConfig),
    /// `type = "splunk_hec"`.
    SplunkHec(SplunkConfig),
    /// `type = "otlp"`.
    Otlp(OtlpConfig),
    /// `type = "email"`.
    Email(EmailConfig),
}

impl SinkConfig {
    /// The `type` key's value, also the `destination_type` metric label.
    pub fn type_name(&self) -> &'static str {
        match self {
            SinkConfig::Webhook(_) => "webhook",
            SinkConfig::File(_) => "file",
            SinkConfig::S3(_) => "s3",
            SinkConfig::Datadog(_) => "datadog",
            SinkConfig::SplunkHec(_) => "splunk_hec",
            SinkConfig::Otlp(_) => "otlp",
            SinkConfig::Email(_) => "email",
        }
    }
}
