//! The load generator's side of a keep-alive HTTP/1.1 connection, written by hand the way `wrk`
//! drives one: a request is one `write` of bytes prepared in advance, and its answer is read
//! into one reused buffer and parsed in place with `httparse` (status, then the body framed by
//! `Content-Length`, by `chunked`, or by the end of the connection).
//!
//! A general client (hyper's, as this bench used before) runs each connection as two tasks that
//! hand every request and answer to each other through channels; on the two cores the load
//! generator shares with the servers it measures, that cost grows when answers come slower
//! (fewer of them per wake-up) and is then taken from the server under test. Here a connection
//! is one task, and a request costs the generator about what it costs `wrk`.

use std::net::SocketAddr;

use anyhow::{Context, bail};
use http::StatusCode;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Headers an answer may carry before it counts as malformed.
const MAX_HEADERS: usize = 64;

/// The largest answer head accepted.
const MAX_HEAD: usize = 64 * 1024;

/// How much the buffer asks the socket for at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A stream a connection runs over: TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// One answer; its body borrows the connection's buffer until the next request.
#[derive(Debug)]
pub struct Answer<'a> {
    /// The status code.
    pub status: StatusCode,
    /// The body, de-chunked.
    pub body: &'a [u8],
}

/// A keep-alive HTTP/1.1 connection.
pub struct Connection {
    io: Box<dyn Io>,
    /// Bytes read and not yet consumed: `buf[start..]`.
    buf: Vec<u8>,
    start: usize,
    /// The de-chunked body of the last chunked answer.
    chunked: Vec<u8>,
    /// Whether the server may take another request on this connection.
    reusable: bool,
}

/// How an answer's body is delimited.
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

impl Connection {
    /// Opens a connection to `addr` (`TCP_NODELAY` on), with TLS when a connector is given.
    pub async fn open(addr: SocketAddr, tls: Option<&TlsConnector>) -> anyhow::Result<Self> {
        let tcp = TcpStream::connect(addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        tcp.set_nodelay(true).context("setting TCP_NODELAY")?;
        let io: Box<dyn Io> = match tls {
            None => Box::new(tcp),
            Some(connector) => Box::new(
                connector
                    .connect(ServerName::IpAddress(addr.ip().into()), tcp)
                    .await
                    .context("TLS handshake")?,
            ),
        };
        Ok(Self::over(io))
    }

    /// A connection over an already open stream.
    pub fn over(io: Box<dyn Io>) -> Self {
        Self {
            io,
            buf: Vec::with_capacity(READ_CHUNK),
            start: 0,
            chunked: Vec::new(),
            reusable: true,
        }
    }

    /// Whether the server left the connection open for another request.
    pub fn reusable(&self) -> bool {
        self.reusable
    }

    /// Sends `request` (a whole HTTP/1.1 request, head and body) and reads its answer; interim
    /// (`1xx`) answers are skipped.
    pub async fn exchange(&mut self, request: &[u8]) -> anyhow::Result<Answer<'_>> {
        if !self.reusable {
            bail!("the server closed this connection");
        }
        self.io.write_all(request).await.context("sending")?;
        loop {
            let (status, framing, head_len, close) = self.read_head().await?;
            self.start += head_len;
            if status.is_informational() {
                continue;
            }
            if close {
                self.reusable = false;
            }
            let body = match framing {
                Framing::Length(length) => {
                    self.fill(length).await?;
                    let at = self.start;
                    self.start += length;
                    at..at + length
                }
                Framing::Chunked => {
                    self.read_chunked().await?;
                    return Ok(Answer {
                        status,
                        body: &self.chunked,
                    });
                }
                Framing::UntilClose => {
                    self.reusable = false;
                    while self.read_more().await? > 0 {}
                    self.start..self.buf.len()
                }
            };
            return Ok(Answer {
                status,
                body: &self.buf[body],
            });
        }
    }

    /// Reads until a whole head is buffered, and parses it.
    async fn read_head(&mut self) -> anyhow::Result<(StatusCode, Framing, usize, bool)> {
        loop {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut response = httparse::Response::new(&mut headers);
            match response
                .parse(&self.buf[self.start..])
                .context("malformed answer head")?
            {
                httparse::Status::Complete(head_len) => {
                    let code = response.code.context("answer without a status")?;
                    let status = StatusCode::from_u16(code).context("answer status")?;
                    let mut framing = if code == 204 || code == 304 {
                        Framing::Length(0)
                    } else {
                        Framing::UntilClose
                    };
                    let mut close = response.version == Some(0);
                    for header in response.headers.iter() {
                        if header.name.eq_ignore_ascii_case("content-length") {
                            let length = std::str::from_utf8(header.value)
                                .ok()
                                .and_then(|value| value.trim().parse().ok())
                                .context("answer with a malformed Content-Length")?;
                            framing = Framing::Length(length);
                        } else if header.name.eq_ignore_ascii_case("transfer-encoding")
                            && header.value.eq_ignore_ascii_case(b"chunked")
                        {
                            framing = Framing::Chunked;
                        } else if header.name.eq_ignore_ascii_case("connection") {
                            close = header.value.eq_ignore_ascii_case(b"close");
                        }
                    }
                    return Ok((status, framing, head_len, close));
                }
                httparse::Status::Partial => {
                    if self.buf.len() - self.start > MAX_HEAD {
                        bail!("answer head longer than {MAX_HEAD} bytes");
                    }
                    if self.read_more().await? == 0 {
                        bail!("connection closed before a whole answer head");
                    }
                }
            }
        }
    }

    /// Reads until at least `wanted` unconsumed bytes are buffered.
    async fn fill(&mut self, wanted: usize) -> anyhow::Result<()> {
        while self.buf.len() - self.start < wanted {
            if self.read_more().await? == 0 {
                bail!("connection closed in the middle of an answer body");
            }
        }
        Ok(())
    }

    /// Reads a chunked body into `self.chunked`, up to and including its trailer.
    async fn read_chunked(&mut self) -> anyhow::Result<()> {
        self.chunked.clear();
        loop {
            let size_line = self.line().await?;
            let size_text = size_line.split(|&byte| byte == b';').next().unwrap_or(&[]);
            let size = std::str::from_utf8(size_text)
                .ok()
                .and_then(|text| usize::from_str_radix(text.trim(), 16).ok())
                .context("malformed chunk size")?;
            if size == 0 {
                // Trailer lines, up to the empty one.
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            self.fill(size + 2).await?;
            let data = &self.buf[self.start..self.start + size + 2];
            if !data.ends_with(b"\r\n") {
                bail!("chunk not followed by CRLF");
            }
            self.chunked.extend_from_slice(&data[..size]);
            self.start += size + 2;
        }
    }

    /// Takes one CRLF-terminated line from the buffer (without its CRLF).
    async fn line(&mut self) -> anyhow::Result<Vec<u8>> {
        loop {
            let pending = &self.buf[self.start..];
            if let Some(end) = pending.windows(2).position(|pair| pair == b"\r\n") {
                let line = pending[..end].to_vec();
                self.start += end + 2;
                return Ok(line);
            }
            if pending.len() > MAX_HEAD {
                bail!("line longer than {MAX_HEAD} bytes in a chunked body");
            }
            if self.read_more().await? == 0 {
                bail!("connection closed in the middle of a chunked body");
            }
        }
    }

    /// Reads whatever the socket has (waiting for at least one byte), after moving unconsumed
    /// bytes to the front of the buffer; returns the count, 0 at the end of the stream.
    async fn read_more(&mut self) -> anyhow::Result<usize> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.reserve(READ_CHUNK);
        self.io
            .read_buf(&mut self.buf)
            .await
            .context("reading the answer")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use tokio::io::{AsyncWriteExt, DuplexStream, duplex};

    /// A connection whose server side is `server`, which the test writes answers into.
    fn pair() -> (Connection, DuplexStream) {
        let (client, server) = duplex(1 << 20);
        (Connection::over(Box::new(client)), server)
    }

    /// Reads the one-byte request `x`, answers with `answer` and closes the connection.
    fn answer_once_and_close(mut server: DuplexStream, answer: &'static [u8]) {
        tokio::spawn(async move {
            let mut request = [0_u8; 1];
            server.read_exact(&mut request).await.unwrap();
            server.write_all(answer).await.unwrap();
        });
    }

    #[tokio::test]
    async fn answers_framed_by_length_follow_each_other_on_one_connection() {
        let (mut connection, mut server) = pair();
        server
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhelloHTTP/1.1 403 Forbidden\r\n\
                  Content-Length: 3\r\n\r\nno!",
            )
            .await
            .unwrap();
        let first = connection
            .exchange(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!((first.status, first.body), (StatusCode::OK, &b"hello"[..]));
        let second = connection
            .exchange(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(
            (second.status, second.body),
            (StatusCode::FORBIDDEN, &b"no!"[..])
        );
        assert!(connection.reusable());
        // The server saw both requests.
        let mut seen = vec![0; 36];
        server.read_exact(&mut seen).await.unwrap();
        assert_eq!(seen, b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn an_answer_arriving_a_byte_at_a_time_is_read_whole() {
        let (mut connection, mut server) = pair();
        let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n{\"data\":1}\n";
        let writer = tokio::spawn(async move {
            for byte in answer {
                server.write_all(&[*byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
            server
        });
        let got = connection
            .exchange(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(got.body, b"{\"data\":1}\n");
        drop(writer.await.unwrap());
    }

    #[tokio::test]
    async fn chunked_answers_are_joined_and_interim_answers_skipped() {
        let (mut connection, mut server) = pair();
        server
            .write_all(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n\
                  4;ext=1\r\nabcd\r\na\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n\
                  HTTP/1.1 204 No Content\r\n\r\n",
            )
            .await
            .unwrap();
        let got = connection.exchange(b"x").await.unwrap();
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body, b"abcd0123456789");
        let empty = connection.exchange(b"x").await.unwrap();
        assert_eq!(
            (empty.status, empty.body),
            (StatusCode::NO_CONTENT, &b""[..])
        );
    }

    #[tokio::test]
    async fn connection_close_and_unframed_bodies_end_the_connection() {
        let (mut connection, mut server) = pair();
        server
            .write_all(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            .await
            .unwrap();
        assert_eq!(connection.exchange(b"x").await.unwrap().body, b"ok");
        assert!(!connection.reusable());
        assert!(connection.exchange(b"x").await.is_err());

        let (mut connection, server) = pair();
        answer_once_and_close(server, b"HTTP/1.1 200 OK\r\n\r\nuntil the end");
        assert_eq!(
            connection.exchange(b"x").await.unwrap().body,
            b"until the end"
        );
        assert!(!connection.reusable());
    }

    #[tokio::test]
    async fn broken_answers_are_errors_not_hangs() {
        for broken in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"[..],
            b"HTTP/1.1 200 OK\r\nContent-Len",
            b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY",
            b"garbage\r\n\r\n",
        ] {
            let (mut connection, server) = pair();
            answer_once_and_close(server, broken);
            let error = connection.exchange(b"x").await.unwrap_err();
            assert!(
                !format!("{error:#}").contains("sending"),
                "{}: {error:#}",
                String::from_utf8_lossy(broken)
            );
        }
    }
}
