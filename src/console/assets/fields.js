// The settings of every destination type, as the API takes them (courier's README and
// docs/api.md): where each value goes in the definition (`path`), how it is edited (`kind`)
// and a hint. The API checks everything; the form only lays it out and shows the API's 422
// errors at the field their JSON pointer names.
//
// kinds: text, url, secret (write-only: answered masked, the mask sent back keeps it),
// number, bool, select (`options`), lines (a list, one per line), pairs (a map, `key = value`
// per line; `numbers` for numeric values), textarea.

export const TYPES = ['webhook', 'datadog', 'splunk_hec', 'otlp', 'email', 's3'];

const COMPRESSION = { path: ['compression'], kind: 'select', label: 'Compression', options: ['none', 'gzip'] };
const TLS_SKIP = { path: ['tls', 'insecure_skip_verify'], kind: 'bool', label: 'Skip TLS verification (testing only)' };
const MAX_REQUEST = { path: ['max_request_bytes'], kind: 'number', label: 'Largest request (bytes, uncompressed)' };

export const TYPE_FIELDS = {
  webhook: [
    { path: ['url'], kind: 'url', label: 'URL', required: true, hint: 'Where batches are POSTed (http or https).' },
    { path: ['preset'], kind: 'select', label: 'Preset', options: ['slack', 'teams', 'newrelic', 'pagerduty'],
      hint: 'A ready body template and its defaults (Slack, Microsoft Teams, New Relic Log API, PagerDuty Events v2). Leave empty to send the events themselves.' },
    { path: ['secret'], kind: 'secret', label: 'Signing secret', hint: 'Standard Webhooks secret (whsec_…); optional.' },
    { path: ['headers'], kind: 'pairs', label: 'Headers', hint: 'One per line: Name = value. Values are write-only.' },
    { path: ['format'], kind: 'select', label: 'Body format', options: ['json_array', 'ndjson'], hint: 'Not with a preset or template.' },
    COMPRESSION,
    { path: ['template'], kind: 'textarea', label: 'Body template (minijinja)', hint: 'Replaces the preset\'s template.' },
    { path: ['content_type'], kind: 'text', label: 'Content-Type of a templated body' },
    { path: ['template_secret'], kind: 'secret', label: 'Template secret', hint: 'E.g. the PagerDuty routing key; write-only.' },
  ],
  datadog: [
    { path: ['api_key'], kind: 'secret', label: 'API key', required: true },
    { path: ['site'], kind: 'select', label: 'Site', options: ['datadoghq.com', 'us3.datadoghq.com', 'us5.datadoghq.com',
      'datadoghq.eu', 'ap1.datadoghq.com', 'ap2.datadoghq.com', 'uk1.datadoghq.com', 'ddog-gov.com', 'us2.ddog-gov.com'] },
    { path: ['endpoint'], kind: 'url', label: 'Endpoint', hint: 'A base URL replacing the site\'s intake.' },
    { path: ['service'], kind: 'text', label: 'Service' },
    { path: ['source'], kind: 'text', label: 'Source (ddsource)' },
    { path: ['hostname'], kind: 'text', label: 'Hostname' },
    { path: ['tags'], kind: 'lines', label: 'Tags', hint: 'key:value, one per line.' },
    COMPRESSION,
  ],
  splunk_hec: [
    { path: ['endpoint'], kind: 'url', label: 'Collector URL', required: true, hint: 'e.g. https://splunk:8088' },
    { path: ['token'], kind: 'secret', label: 'HEC token', required: true },
    { path: ['index'], kind: 'text', label: 'Index' },
    { path: ['source'], kind: 'text', label: 'Source' },
    { path: ['sourcetype'], kind: 'text', label: 'Sourcetype' },
    { path: ['host'], kind: 'text', label: 'Host' },
    { path: ['ack'], kind: 'bool', label: 'Wait for indexer acknowledgement' },
    { path: ['ack_timeout'], kind: 'text', label: 'Acknowledgement timeout', hint: 'A duration, e.g. 5m.' },
    COMPRESSION, MAX_REQUEST, TLS_SKIP,
  ],
  otlp: [
    { path: ['endpoint'], kind: 'url', label: 'Endpoint', required: true, hint: 'The receiver\'s base URL.' },
    { path: ['logs_path'], kind: 'text', label: 'Logs path', hint: 'Default /v1/logs.' },
    { path: ['encoding'], kind: 'select', label: 'Encoding', options: ['protobuf', 'json'] },
    COMPRESSION,
    { path: ['headers'], kind: 'pairs', label: 'Headers', hint: 'The vendor\'s API key header; one per line: Name = value. Write-only.' },
    { path: ['service_name'], kind: 'text', label: 'service.name' },
    { path: ['resource_attributes'], kind: 'pairs', label: 'Resource attributes' },
    MAX_REQUEST, TLS_SKIP,
  ],
  email: [
    { path: ['host'], kind: 'text', label: 'SMTP host', required: true },
    { path: ['port'], kind: 'number', label: 'Port' },
    { path: ['tls_mode'], kind: 'select', label: 'TLS', options: ['starttls', 'tls', 'none'] },
    { path: ['username'], kind: 'text', label: 'Username' },
    { path: ['password'], kind: 'secret', label: 'Password' },
    { path: ['from'], kind: 'text', label: 'From', required: true },
    { path: ['to'], kind: 'lines', label: 'To', required: true, hint: 'One address per line (1 to 50).' },
    { path: ['min_interval'], kind: 'text', label: 'At most one email per', hint: 'A duration; default 15m.' },
    { path: ['max_message_bytes'], kind: 'number', label: 'Largest message (bytes)' },
  ],
  s3: [
    { path: ['bucket'], kind: 'text', label: 'Bucket', required: true },
    { path: ['region'], kind: 'text', label: 'Region' },
    { path: ['endpoint'], kind: 'url', label: 'Endpoint', hint: 'For S3-compatible servers.' },
    { path: ['force_path_style'], kind: 'bool', label: 'Path-style addressing' },
    { path: ['prefix'], kind: 'text', label: 'Key prefix' },
    { path: ['key_template'], kind: 'text', label: 'Key template' },
    COMPRESSION,
    { path: ['access_key_id'], kind: 'secret', label: 'Access key id', required: true },
    { path: ['secret_access_key'], kind: 'secret', label: 'Secret access key', required: true },
    { path: ['session_token'], kind: 'secret', label: 'Session token' },
    { path: ['server_side_encryption'], kind: 'select', label: 'Server-side encryption', options: ['AES256', 'aws:kms'] },
    { path: ['kms_key_id'], kind: 'text', label: 'KMS key id' },
    { path: ['multipart_threshold'], kind: 'number', label: 'Multipart threshold (bytes)' },
    { path: ['multipart_part_size'], kind: 'number', label: 'Multipart part size (bytes)' },
  ],
};

const LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR'];

// Sections every type has.
export const COMMON_SECTIONS = [
  { title: 'Which events', fields: [
    { path: ['filter', 'min_level'], kind: 'select', label: 'Lowest level', options: LEVELS },
    { path: ['filter', 'levels'], kind: 'lines', label: 'Only these levels', hint: 'One per line.' },
    { path: ['filter', 'types'], kind: 'lines', label: 'Event types' },
    { path: ['filter', 'event_names'], kind: 'lines', label: 'Event names' },
    { path: ['filter', 'integration_ids'], kind: 'lines', label: 'Integration ids' },
    { path: ['filter', 'end_user_ids'], kind: 'lines', label: 'End-user ids' },
    { path: ['filter', 'trace_ids'], kind: 'lines', label: 'Trace ids' },
    { path: ['filter', 'since'], kind: 'text', label: 'Since (RFC 3339)' },
    { path: ['filter', 'until'], kind: 'text', label: 'Until (RFC 3339)' },
    { path: ['filter', 'search'], kind: 'text', label: 'Text the event contains' },
  ] },
  { title: 'Delivery', fields: [
    { path: ['delivery', 'batch_max_events'], kind: 'number', label: 'Events per batch' },
    { path: ['delivery', 'batch_max_bytes'], kind: 'number', label: 'Bytes per batch' },
    { path: ['delivery', 'batch_timeout'], kind: 'text', label: 'Batch timeout', hint: 'A duration, e.g. 1s.' },
    { path: ['delivery', 'max_in_flight'], kind: 'number', label: 'Concurrent requests' },
    { path: ['delivery', 'request_timeout'], kind: 'text', label: 'Request timeout' },
    { path: ['delivery', 'retry_max_elapsed'], kind: 'text', label: 'In-line retry budget' },
    { path: ['delivery', 'retry_initial_backoff'], kind: 'text', label: 'First backoff' },
    { path: ['delivery', 'retry_max_backoff'], kind: 'text', label: 'Longest backoff' },
    { path: ['delivery', 'queue_max_events'], kind: 'number', label: 'Queue size (events)' },
    { path: ['delivery', 'retry_schedule'], kind: 'lines', label: 'Retry schedule', hint: 'Durations, one per line.' },
    { path: ['delivery', 'circuit_failure_threshold'], kind: 'number', label: 'Failures that open the circuit' },
    { path: ['delivery', 'probe_interval'], kind: 'text', label: 'Probe interval' },
    { path: ['delivery', 'pause_after'], kind: 'text', label: 'Pause after failing for' },
  ] },
  { title: 'Shaping and limits', fields: [
    { path: ['redact'], kind: 'lines', label: 'Redact paths', hint: 'e.g. payload.**.password, one per line.' },
    { path: ['drop'], kind: 'lines', label: 'Drop paths' },
    { path: ['keep'], kind: 'lines', label: 'Keep only paths' },
    { path: ['redact_with'], kind: 'select', label: 'Redact with', options: ['text', 'hmac'] },
    { path: ['redact_key'], kind: 'secret', label: 'HMAC key' },
    { path: ['sample'], kind: 'pairs', numbers: true, label: 'Sampling', hint: 'LEVEL = fraction kept, one per line (INFO = 0.5).' },
    { path: ['daily_cap', 'events'], kind: 'number', label: 'Daily cap (events)' },
    { path: ['daily_cap', 'bytes'], kind: 'number', label: 'Daily cap (bytes)' },
    { path: ['rate_limit', 'events_per_second'], kind: 'number', label: 'Events per second' },
    { path: ['rate_limit', 'requests_per_second'], kind: 'number', label: 'Requests per second' },
    { path: ['rate_limit', 'burst'], kind: 'number', label: 'Burst' },
  ] },
];

// Console-side presets: values a vendor needs, filled into the form (nothing is sent until
// the form is saved). The webhook presets are courier's own `preset` key above.
export const OTLP_VENDORS = {
  'New Relic': { endpoint: 'https://otlp.nr-data.net', header: 'api-key' },
  Honeycomb: { endpoint: 'https://api.honeycomb.io', header: 'x-honeycomb-team' },
  'Grafana Cloud': { endpoint: 'https://otlp-gateway-prod-ZONE.grafana.net/otlp', header: 'Authorization' },
  'Datadog (OTLP)': { endpoint: 'https://otlp.datadoghq.com', header: 'dd-api-key' },
};
