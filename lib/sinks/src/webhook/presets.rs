//! Ready body templates for services with their own webhook formats (`preset = "slack"`),
//! written against each service's documented request format and tested against fakes that
//! enforce it (tests/sinks_templates.rs). A user's `template` replaces a preset's; the other
//! defaults a preset brings (content type, batch size, filter) stay.

use serde::Deserialize;

/// A preset's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Slack incoming webhook: `text` + `blocks`.
    Slack,
    /// Microsoft Teams workflow webhook: a message with an Adaptive Card attachment.
    Teams,
    /// New Relic Log API: `[{ "common": …, "logs": [ … ] }]`, `Api-Key` header.
    Newrelic,
    /// PagerDuty Events API v2: one `trigger` per event.
    Pagerduty,
}

/// Every preset, in the order `courier template show` lists them.
pub const ALL: [Preset; 4] = [
    Preset::Slack,
    Preset::Teams,
    Preset::Newrelic,
    Preset::Pagerduty,
];

impl Preset {
    /// The `preset` key's value.
    pub fn name(self) -> &'static str {
        match self {
            Preset::Slack => "slack",
            Preset::Teams => "teams",
            Preset::Newrelic => "newrelic",
            Preset::Pagerduty => "pagerduty",
        }
    }

    /// The preset named `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        ALL.into_iter().find(|p| p.name() == name)
    }

    /// The template's source.
    pub fn template(self) -> &'static str {
        match self {
            Preset::Slack => SLACK,
            Preset::Teams => TEAMS,
            Preset::Newrelic => NEWRELIC,
            Preset::Pagerduty => PAGERDUTY,
        }
    }

    /// `batch_max_events` unless the destination sets it: chat messages and PagerDuty
    /// incidents are per event; New Relic takes batches.
    pub fn batch_max_events(self) -> Option<usize> {
        match self {
            Preset::Slack | Preset::Teams | Preset::Pagerduty => Some(1),
            Preset::Newrelic => None,
        }
    }

    /// Whether the template renders only the batch's first event, so batches must be of one
    /// event (`delivery.batch_max_events = 1`).
    pub fn per_event(self) -> bool {
        self == Preset::Pagerduty
    }
}

/// Slack: a `text` summary (the notification's text, ≤ 3,000 characters of Slack's 40,000)
/// and one `section` block per event (its text ≤ 500 characters of Slack's 3,000), at most
/// 20 of them and a `context` block counting the rest (≤ 50 blocks; Slack also refuses
/// messages whose blocks hold more than about 13,000 characters in all,
/// `msg_blocks_too_long`, so they stay near 10,000). `&`, `<` and `>` are escaped as Slack's
/// mrkdwn requires.
const SLACK: &str = r#"{%- set shown = events[:20] -%}
{%- set first = event.message|default("") ~ "" -%}
{"text": {{ ((events|length) ~ " event(s) in project " ~ project ~ ": " ~ first)|replace("&", "&amp;")|replace("<", "&lt;")|replace(">", "&gt;")|truncate(3000)|tojson }},
 "blocks": [
{%- for e in shown %}
  {"type": "section", "text": {"type": "mrkdwn", "text": {{ ("*" ~ (e.level|default("INFO")) ~ "* " ~ (e.type|default("")) ~ " " ~ (e.timestamp|default("")) ~ "\n" ~ (e.message|default("")))|replace("&", "&amp;")|replace("<", "&lt;")|replace(">", "&gt;")|truncate(500)|tojson }}}}{% if not loop.last %},{% endif %}
{%- endfor %}
{%- if events|length > shown|length %},
  {"type": "context", "elements": [{"type": "mrkdwn", "text": {{ ("and " ~ (events|length - shown|length) ~ " more")|tojson }}}]}
{%- endif %}
 ]}
"#;

/// Teams (Workflows "When a Teams webhook request is received"): a `message` whose one
/// attachment is an Adaptive Card 1.4, one `TextBlock` and `FactSet` per event (at most 10,
/// messages cut at 1,000 characters, within Teams' 28 KB).
const TEAMS: &str = r#"{%- set shown = events[:10] -%}
{"type": "message",
 "attachments": [{
  "contentType": "application/vnd.microsoft.card.adaptive",
  "contentUrl": null,
  "content": {
   "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
   "type": "AdaptiveCard",
   "version": "1.4",
   "body": [
    {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "text": {{ ((events|length) ~ " event(s) in project " ~ project)|tojson }}}
{%- for e in shown %},
    {"type": "TextBlock", "wrap": true, "separator": true, "text": {{ (e.message|default(""))|truncate(1000)|tojson }}},
    {"type": "FactSet", "facts": [
      {"title": "Level", "value": {{ (e.level|default("INFO"))|string|tojson }}},
      {"title": "Type", "value": {{ (e.type|default(""))|string|tojson }}},
      {"title": "Time", "value": {{ (e.timestamp|default(""))|string|tojson }}}]}
{%- endfor %}
{%- if events|length > shown|length %},
    {"type": "TextBlock", "wrap": true, "isSubtle": true, "text": {{ ("and " ~ (events|length - shown|length) ~ " more")|tojson }}}
{%- endif %}
   ]}}]}
"#;

/// New Relic Log API: one block with `common` attributes and one log per event: its epoch
/// millisecond `timestamp` (when it has one), `message`, `level`, and the whole event as
/// attributes (New Relic flattens nested objects).
const NEWRELIC: &str = r#"[{"common": {"attributes": {"courier.project": {{ project|tojson }}, "courier.destination": {{ destination|tojson }}, "courier.batch": {{ batch_id|tojson }}}},
  "logs": [
{%- for e in events %}
   {{ "{" }}{% if e.timestamp %}"timestamp": {{ e.timestamp|epoch_ms }}, {% endif %}"message": {{ (e.message|default(""))|string|tojson }}, "level": {{ (e.level|default("INFO"))|string|tojson }}, "attributes": {{ e|tojson }}}{% if not loop.last %},{% endif %}
{%- endfor %}
  ]}]
"#;

/// PagerDuty Events API v2: a `trigger` for the batch's one event, deduplicated by the
/// event's `id` (else by the batch id, stable for the same Kafka record), severity from its
/// level, the whole event as `custom_details`, the routing key from `template_secret`.
const PAGERDUTY: &str = r#"{%- set level = (event.level|default("INFO"))|string -%}
{%- if level == "ERROR" %}{% set severity = "error" %}{% elif level == "WARN" %}{% set severity = "warning" %}{% else %}{% set severity = "info" %}{% endif -%}
{"routing_key": {{ template_secret|tojson }},
 "event_action": "trigger",
 "dedup_key": {{ (event.id|default(batch_id))|string|truncate(255)|tojson }},
 "payload": {
  "summary": {{ (level ~ " " ~ (event.type|default("event")) ~ ": " ~ (event.message|default("")))|truncate(1024)|tojson }},
  "source": {{ ("courier/" ~ project)|truncate(255)|tojson }},
  "severity": {{ severity|tojson }},
{%- if event.timestamp %}
  "timestamp": {{ event.timestamp|datetime|tojson }},
{%- endif %}
  "component": {{ (event.type|default("courier"))|string|tojson }},
  "group": {{ project|tojson }},
  "custom_details": {{ event|tojson }}
 }}
"#;
