//! An admin client that does not hold its caller when dropped.
//!
//! rdkafka's `AdminClient` joins its polling thread when dropped, and that thread looks for
//! the stop only between polls of 100 ms: each admin client dropped in line held its caller
//! up to 100 ms. At start that was creating the retry topic (before reading began) and reading
//! the topic's retention (before the parking decision), about 100 ms each, in every start.
//! [`Admin`] hands the client to a thread of its own to be dropped there.

use std::ops::Deref;

use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaResult;
use rdkafka::ClientConfig;

/// An admin client dropped on a thread of its own.
pub struct Admin(Option<AdminClient<DefaultClientContext>>);

impl Admin {
    /// An admin client from `config`.
    pub fn create(config: &ClientConfig) -> KafkaResult<Self> {
        Ok(Self(Some(config.create()?)))
    }
}

impl Deref for Admin {
    type Target = AdminClient<DefaultClientContext>;

    fn deref(&self) -> &Self::Target {
        self.0
            .as_ref()
            .expect("the client is taken only when the Admin is dropped")
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Should the thread not start, the closure and the client in it are dropped
            // here, in line: slower, never lost.
            let _ = std::thread::Builder::new()
                .name("admin drop".into())
                .spawn(move || drop(client));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// rdkafka's own drop waits for its polling thread's 100 ms poll to end: five of them in a
    /// row wait about 250 ms in all (each 0–100 ms), below 100 ms less than one time in a
    /// hundred. Handed to threads, five take a few thread starts.
    #[test]
    fn dropping_an_admin_client_does_not_wait_for_its_polling_thread() {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", "127.0.0.1:1");
        let clients: Vec<Admin> = (0..5).map(|_| Admin::create(&config).unwrap()).collect();
        // Let each polling thread enter its poll.
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        drop(clients);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(100),
            "five drops took {took:?}"
        );
    }
}
