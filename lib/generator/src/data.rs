//! The fixed tables the generator picks from: integrations, people, companies, messages and
//! delivery errors.

use super::*;

pub(crate) const INTEGRATIONS: [Integration; 8] = [
    Integration {
        id: "salesforce",
        weight: 25,
        objects: &["Contact", "Opportunity", "Lead", "Account"],
        actions: &[
            "SALESFORCE_CREATE_RECORD",
            "SALESFORCE_UPDATE_RECORD",
            "SALESFORCE_SEARCH_RECORDS",
            "SALESFORCE_GET_RECORD_BY_ID",
        ],
        webhook_events: &["Record Created", "Record Updated", "Record Deleted"],
        pipelines: &["crm-contacts", "crm-opportunities"],
        scopes: &["api", "refresh_token"],
        has_amount: true,
    },
    Integration {
        id: "hubspot",
        weight: 20,
        objects: &["contact", "deal", "company"],
        actions: &[
            "HUBSPOT_CREATE_RECORD_CONTACTS",
            "HUBSPOT_UPDATE_RECORD_DEALS",
            "HUBSPOT_SEARCH_RECORDS_COMPANIES",
        ],
        webhook_events: &[
            "contact.creation",
            "deal.propertyChange",
            "company.deletion",
        ],
        pipelines: &["crm-contacts", "crm-deals"],
        scopes: &["crm.objects.contacts.read", "crm.objects.deals.write"],
        has_amount: true,
    },
    Integration {
        id: "slack",
        weight: 14,
        objects: &["message", "channel"],
        actions: &[
            "SLACK_SEND_MESSAGE",
            "SLACK_LIST_CHANNELS",
            "SLACK_SEARCH_MESSAGES",
        ],
        webhook_events: &["message.channels", "app_mention", "member_joined_channel"],
        pipelines: &["messages"],
        scopes: &["chat:write", "channels:read"],
        has_amount: false,
    },
    Integration {
        id: "zendesk",
        weight: 10,
        objects: &["ticket", "user"],
        actions: &[
            "ZENDESK_CREATE_TICKET",
            "ZENDESK_UPDATE_TICKET",
            "ZENDESK_SEARCH_TICKETS",
        ],
        webhook_events: &["ticket.created", "ticket.updated", "ticket.solved"],
        pipelines: &["tickets"],
        scopes: &["read", "write"],
        has_amount: false,
    },
    Integration {
        id: "jira",
        weight: 10,
        objects: &["issue", "project"],
        actions: &[
            "JIRA_CREATE_ISSUE",
            "JIRA_UPDATE_ISSUE",
            "JIRA_SEARCH_BY_JQL",
        ],
        webhook_events: &[
            "jira:issue_created",
            "jira:issue_updated",
            "comment_created",
        ],
        pipelines: &["issues"],
        scopes: &["read:jira-work", "write:jira-work", "offline_access"],
        has_amount: false,
    },
    Integration {
        id: "google-drive",
        weight: 9,
        objects: &["file", "folder"],
        actions: &[
            "GOOGLE_DRIVE_LIST_FILES",
            "GOOGLE_DRIVE_SAVE_FILE",
            "GOOGLE_DRIVE_SEARCH_FOLDERS",
        ],
        webhook_events: &["file.created", "file.updated"],
        pipelines: &["files"],
        scopes: &["https://www.googleapis.com/auth/drive.readonly"],
        has_amount: false,
    },
    Integration {
        id: "notion",
        weight: 6,
        objects: &["page", "database"],
        actions: &[
            "NOTION_CREATE_PAGE",
            "NOTION_UPDATE_PAGE",
            "NOTION_SEARCH_PAGES",
        ],
        webhook_events: &["page.created", "page.content_updated"],
        pipelines: &["pages"],
        scopes: &["read_content", "update_content"],
        has_amount: false,
    },
    Integration {
        id: "shopify",
        weight: 6,
        objects: &["order", "customer", "product"],
        actions: &[
            "SHOPIFY_CREATE_ORDER",
            "SHOPIFY_GET_CUSTOMERS",
            "SHOPIFY_UPDATE_PRODUCT",
        ],
        webhook_events: &["orders/create", "orders/paid", "customers/update"],
        pipelines: &["orders", "customers"],
        scopes: &["read_orders", "write_customers"],
        has_amount: true,
    },
];

pub(crate) static INTEGRATION_LIST: &[Integration] = &INTEGRATIONS;

pub(crate) const INTEGRATION_CUMULATIVE: [u32; INTEGRATIONS.len()] = {
    let mut out = [0; INTEGRATIONS.len()];
    let mut total = 0;
    let mut i = 0;
    while i < INTEGRATIONS.len() {
        total += INTEGRATIONS[i].weight;
        out[i] = total;
        i += 1;
    }
    out
};

pub(crate) const EVENT_NAMES: &[&str] = &[
    "Contact Created",
    "Contact Updated",
    "Deal Won",
    "Invoice Paid",
    "Ticket Escalated",
    "User Signed Up",
    "Order Shipped",
    "Meeting Booked",
];

pub(crate) const PEOPLE: &[(&str, &str)] = &[
    ("Ada Lovelace", "ada@analytical.example"),
    ("José Álvarez", "jose.alvarez@example.com"),
    ("Zoë Müller", "zoe.mueller@example.de"),
    ("Renée O'Connor", "renee.oconnor@example.ie"),
    ("Søren Kjær", "soren@example.dk"),
    ("李雷", "li.lei@example.cn"),
    ("Grace Hopper", "grace@navy.example"),
    ("Łukasz Żółkiewski", "lukasz@example.pl"),
    ("Ngozi Okonkwo", "ngozi@example.ng"),
    ("Αλέξανδρος Παππάς", "alex.pappas@example.gr"),
    ("Priya Raman", "priya.raman@example.in"),
    ("Mårten Ångström", "marten@example.se"),
];

pub(crate) const COMPANIES: &[&str] = &[
    "Acme Corp",
    "Globex Corporation",
    "Initech",
    "Umbrella \"Bio\" Labs",
    "Müller & Söhne GmbH",
    "Soylent <Foods>",
    "株式会社サンプル",
    "Wayne Enterprises",
    "Stark Industries",
    "Café Olé S.A.",
];

pub(crate) const NOTES: &[&str] = &[
    "Called twice, no answer.\nLeft a voicemail.",
    "Customer wrote: \"Please cancel my order\"",
    "Export path: C:\\Users\\ops\\exports\\contacts.csv",
    "Columns:\tname\temail\tphone",
    "Prefers contact by e-mail — ünïcödé ✓ 🚀",
    "Line one\r\nLine two",
    "Contains a control character: \u{7} (bell)",
    "<script>alert('x')</script>",
    "Ticket #4521 / 'urgent' / {\"priority\": \"high\"}",
    "Paragraph one\u{2028}paragraph two",
];

pub(crate) const TAG_SETS: &[&[&str]] = &[
    &["vip"],
    &["enterprise", "emea"],
    &["trial", "self-serve"],
    &["churn-risk", "q4"],
    &["partner", "apac", "renewal"],
];

pub(crate) const SCHEDULES: &[&str] = &[
    "*/5 * * * *",
    "*/15 * * * *",
    "0 * * * *",
    "0 9 * * 1-5",
    "@daily",
];

pub(crate) const SYNC_WARNING_MESSAGES: &[&str] = &[
    "3 records skipped: missing required field \"email\"",
    "Field 'Lead Source' is deprecated and will be ignored",
    "API quota at 87% for this billing period",
    "Cursor reset by provider; resuming from last checkpoint",
];

pub(crate) const SYNC_ERROR_MESSAGES: &[&str] = &[
    "Upstream API returned 503 Service Unavailable",
    "Object \"Opportunity__c\" no longer exists",
    "Permission denied for scope 'crm.objects.contacts.read'",
];

/// `(destinationId, destinationType)` named by generated `EVENT_DESTINATION` events. Chosen
/// so they never equal the ids tests and the demo configure: a failure event is never
/// delivered to the destination it reports on, so a shared id would silently change what a
/// test destination is expected to receive.
pub(crate) const DESTINATIONS: &[(&str, &str)] = &[
    ("gen-hook-crm", "webhook"),
    ("gen-datadog-prod", "datadog"),
    ("gen-splunk-main", "splunk_hec"),
    ("gen-s3-archive", "s3"),
    ("gen-audit-file", "file"),
];

/// `(reason, error message)` of unroutable messages.
pub(crate) const UNROUTABLE: &[(&str, &str)] = &[
    ("invalid_json", "expected value at line 1 column 1"),
    ("not_object", "the event is not a JSON object"),
    ("missing_project_id", "the event has no projectId"),
    (
        "too_large",
        "the event is 1048577 bytes, over the 1048576-byte limit",
    ),
];

/// `(kind, httpStatus, message)` of delivery failures.
pub(crate) const DELIVERY_ERRORS: &[(&str, Option<u16>, &str)] = &[
    (
        "http_status",
        Some(503),
        "503 Service Unavailable: upstream connect error",
    ),
    (
        "http_status",
        Some(500),
        "{\"error\":\"internal server error\"}",
    ),
    ("http_status", Some(429), "Too Many Requests"),
    (
        "http_status",
        Some(401),
        "{\"code\":401,\"message\":\"invalid API key\"}",
    ),
    ("timeout", None, "request timed out after 30s"),
    ("connect", None, "connection refused (os error 111)"),
];

// ---------------------------------------------------------------------------------------------
// Small helpers.

/// The previous event's context.
#[derive(Debug, Clone, Default)]
pub(crate) struct Context {
    pub(crate) project: String,
    pub(crate) project_hash: u64,
    pub(crate) user: u32,
    pub(crate) type_idx: usize,
    pub(crate) integration: usize,
    pub(crate) workflow: u64,
    pub(crate) trace: Option<SmallStr>,
}
