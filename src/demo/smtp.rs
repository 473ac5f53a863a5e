//! A local SMTP server for the demo's `email` destination: just enough SMTP (RFC 5321's
//! minimal command set, no TLS, no AUTH) to accept digests on loopback and keep each one as
//! `demo-out/mail-<n>.eml`, so the demo needs nothing installed to show email.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// Longest command line or message accepted (the demo's digests are far smaller).
const MAX_LINE: usize = 4096;
const MAX_MESSAGE: usize = 8 * 1024 * 1024;

/// The running server.
pub struct SmtpServer {
    addr: SocketAddr,
    received: Arc<AtomicU64>,
    dir: PathBuf,
}

impl SmtpServer {
    /// Starts on a free loopback port, writing messages into `dir`.
    pub async fn start(dir: PathBuf) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let received = Arc::new(AtomicU64::new(0));
        let (count, out) = (received.clone(), dir.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (count, out) = (count.clone(), out.clone());
                tokio::spawn(async move {
                    if let Err(e) = session(stream, &count, &out).await {
                        tracing::debug!(error = %e, "demo SMTP session ended");
                    }
                });
            }
        });
        Ok(Self {
            addr,
            received,
            dir,
        })
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Messages accepted.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }

    /// Where they are.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

async fn session(
    stream: TcpStream,
    count: &AtomicU64,
    dir: &std::path::Path,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    write.write_all(b"220 courier-demo ESMTP\r\n").await?;
    let mut line = String::new();
    loop {
        line.clear();
        if (&mut read)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?
            == 0
        {
            return Ok(());
        }
        let verb = line
            .trim_end()
            .split(' ')
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => b"250-courier-demo\r\n250 8BITMIME\r\n",
            "HELO" | "MAIL" | "RCPT" | "RSET" | "NOOP" => b"250 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut message = Vec::new();
                loop {
                    let mut l = Vec::new();
                    if (&mut read)
                        .take(MAX_LINE as u64)
                        .read_until(b'\n', &mut l)
                        .await?
                        == 0
                    {
                        return Ok(());
                    }
                    if l == b".\r\n" {
                        break;
                    }
                    // Dot-stuffing (RFC 5321 §4.5.2).
                    let l = l.strip_prefix(b".").unwrap_or(&l);
                    if message.len() + l.len() > MAX_MESSAGE {
                        write.write_all(b"552 Message too large\r\n").await?;
                        return Ok(());
                    }
                    message.extend_from_slice(l);
                }
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                tokio::fs::create_dir_all(dir).await?;
                tokio::fs::write(dir.join(format!("mail-{n:04}.eml")), &message).await?;
                b"250 OK: queued\r\n"
            }
            _ => b"502 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}
