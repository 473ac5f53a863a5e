//! The destinations API: customers configure, test and watch their destinations through the
//! platform, which calls courier under `/v1` on the server port. Definitions live in a
//! compacted Kafka topic ([`store`]) shared by every replica; secrets are sealed before they
//! are written ([`crypto`]) and never returned ([`secrets`]). The file's and the store's
//! destinations are merged into one configuration for the pipeline ([`merge`]).

pub mod config;
pub mod crypto;
pub mod merge;
pub mod secrets;
pub mod store;

pub use config::{ApiConfig, ApiToken, EncryptionKey};

pub mod auth;
pub mod error;
pub mod http;
pub mod openapi;

pub use http::{router, Api, Inner};
