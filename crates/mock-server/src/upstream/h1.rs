//! Our HTTP/1.1 client codec for the upstream exchange ([`super::pool`]): the request head
//! written into one buffer, the reply head parsed with `httparse`, and the reply body's framing
//! decoded (`Content-Length`, `chunked` with extensions and trailers skipped, or up to the
//! connection's end).
//!
//! It follows RFC 9112 section 6.3 as hyper's client does: no body after `HEAD` or for `1xx`,
//! `204` and `304`; informational replies other than `101` are skipped; `Transfer-Encoding`
//! with `chunked` last wins over `Content-Length`; differing or invalid `Content-Length`s are an
//! error; otherwise the body runs to the connection's end. An HTTP/1.1 reply keeps the
//! connection unless it says `Connection: close`, an HTTP/1.0 reply only with
//! `Connection: keep-alive`. Header values are slices of the received head (not copied), names
//! are lower case (`http::HeaderName`), repeated headers keep their values and order.

use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};

/// Most header lines in a reply head (hyper's default).
const MAX_HEADERS: usize = 100;

/// Largest reply head (status line and headers).
pub(super) const MAX_HEAD: usize = 256 * 1024;

/// Most bytes of chunk extensions and trailers in one body (hyper's limit for extensions).
const MAX_CHUNK_OVERHEAD: u64 = 16 * 1024;

/// What went wrong on the wire.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WireError {
    /// Reading or writing the connection.
    #[error("connection error")]
    Io(#[source] std::io::Error),
    /// The connection ended before a reply head came.
    #[error("connection closed before message completed")]
    Closed,
    /// The reply head is not HTTP/1.x.
    #[error("invalid reply head from the upstream: {0}")]
    Head(&'static str),
    /// A `chunked` body that does not follow the format.
    #[error("invalid chunked body from the upstream: {0}")]
    Chunked(&'static str),
    /// The connection ended inside the body.
    #[error("end of file before message completed")]
    Incomplete,
    /// The client's request body failed while it was forwarded.
    #[error("error reading the request body")]
    RequestBody(#[source] axum::Error),
}

/// Writes a request head into `out`: request line, the headers in their order, empty line.
pub(super) fn encode_head(method: &Method, target: &str, headers: &HeaderMap, out: &mut Vec<u8>) {
    out.reserve(32 + target.len() + headers.len() * 32);
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A parsed reply head.
#[derive(Debug)]
pub(super) struct ReplyHead {
    pub(super) status: StatusCode,
    pub(super) version: Version,
    /// The reason phrase when it is not the status's canonical one (as hyper keeps it).
    pub(super) reason: Option<Bytes>,
    pub(super) headers: HeaderMap,
    pub(super) body: Decoder,
    /// Whether the connection may carry another request after this reply's body.
    pub(super) keep_alive: bool,
}

/// Parses a reply head at the start of `buf`, removing it; `None` when `buf` does not hold a
/// whole head yet (informational replies before it are removed too).
pub(super) fn parse_head(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ReplyHead>, WireError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Where each header lies in `buf`: (name start, name end, value start, value end).
        let mut spans: Vec<(usize, usize, usize, usize)>;
        let (len, code, version, reason) = {
            // Not initialised: httparse fills what it uses.
            let mut headers =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
            let mut reply = httparse::Response::new(&mut []);
            let base = buf.as_ptr() as usize;
            let parsed = httparse::ParserConfig::default().parse_response_with_uninit_headers(
                &mut reply,
                buf,
                &mut headers,
            );
            let len = match parsed {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => {
                    if buf.len() > MAX_HEAD {
                        return Err(WireError::Head("the head is too large"));
                    }
                    return Ok(None);
                }
                Err(error) => return Err(WireError::Head(parse_error(error))),
            };
            if len > MAX_HEAD {
                return Err(WireError::Head("the head is too large"));
            }
            let code = reply.code.ok_or(WireError::Head("no status code"))?;
            let version = match reply.version {
                Some(0) => Version::HTTP_10,
                _ => Version::HTTP_11,
            };
            let reason = reply
                .reason
                .map(|reason| (reason.as_ptr() as usize - base, reason.len()));
            spans = Vec::with_capacity(reply.headers.len());
            for header in reply.headers.iter() {
                let name = header.name.as_ptr() as usize - base;
                let value = header.value.as_ptr() as usize - base;
                spans.push((
                    name,
                    name + header.name.len(),
                    value,
                    value + header.value.len(),
                ));
            }
            (len, code, version, reason)
        };
        let head = buf.split_to(len).freeze();
        let status =
            StatusCode::from_u16(code).map_err(|_| WireError::Head("invalid status code"))?;
        if status.is_informational() && status != StatusCode::SWITCHING_PROTOCOLS {
            // `100 Continue` and the like: the real reply follows.
            continue;
        }
        let mut headers = HeaderMap::with_capacity(spans.len());
        let mut keep_alive = version == Version::HTTP_11;
        let mut saw_close = false;
        for &(name_start, name_end, value_start, value_end) in &spans {
            let name = HeaderName::from_bytes(&head[name_start..name_end])
                .map_err(|_| WireError::Head("invalid header name"))?;
            let value = HeaderValue::from_maybe_shared(head.slice(value_start..value_end))
                .map_err(|_| WireError::Head("invalid header value"))?;
            if name == header::CONNECTION {
                if saw_close || has_token(&value, "close") {
                    saw_close = true;
                    keep_alive = false;
                } else if !keep_alive {
                    keep_alive = has_token(&value, "keep-alive");
                }
            }
            headers.append(name, value);
        }
        let reason = reason
            .filter(|&(start, len)| {
                Some(&head[start..start + len]) != status.canonical_reason().map(str::as_bytes)
            })
            .map(|(start, len)| head.slice(start..start + len));
        let body = framing(&headers, status, method, version, &mut keep_alive)?;
        return Ok(Some(ReplyHead {
            status,
            version,
            reason,
            headers,
            body,
            keep_alive,
        }));
    }
}

fn parse_error(error: httparse::Error) -> &'static str {
    match error {
        httparse::Error::Version => "not an HTTP/1.x status line",
        httparse::Error::Status => "invalid status code",
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::TooManyHeaders => "too many headers",
        httparse::Error::Token => "invalid token",
    }
}

/// Whether a comma-separated header value holds `token` (any case).
fn has_token(value: &HeaderValue, token: &str) -> bool {
    value
        .as_bytes()
        .split(|&b| b == b',')
        .any(|part| part.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

/// How the reply's body is delimited (RFC 9112 6.3).
fn framing(
    headers: &HeaderMap,
    status: StatusCode,
    method: &Method,
    version: Version,
    keep_alive: &mut bool,
) -> Result<Decoder, WireError> {
    if status == StatusCode::SWITCHING_PROTOCOLS {
        *keep_alive = false;
        return Ok(Decoder::Length(0));
    }
    if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Decoder::Length(0));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|value| value.as_bytes().rsplit(|&b| b == b',').next())
            .is_some_and(|last| last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        if version == Version::HTTP_11 && chunked_last {
            if headers.contains_key(header::CONTENT_LENGTH) {
                // Both: the encoding wins, but the connection is not trusted again.
                *keep_alive = false;
            }
            return Ok(Decoder::Chunked(Chunked::default()));
        }
        *keep_alive = false;
        return Ok(Decoder::Close);
    }
    let mut length: Option<u64> = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for part in value.as_bytes().split(|&b| b == b',') {
            let part = part.trim_ascii();
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(WireError::Head("invalid Content-Length"));
            }
            let parsed = std::str::from_utf8(part)
                .ok()
                .and_then(|text| text.parse::<u64>().ok())
                .ok_or(WireError::Head("invalid Content-Length"))?;
            match length {
                Some(earlier) if earlier != parsed => {
                    return Err(WireError::Head("differing Content-Length values"));
                }
                _ => length = Some(parsed),
            }
        }
    }
    match length {
        Some(length) => Ok(Decoder::Length(length)),
        None => {
            *keep_alive = false;
            Ok(Decoder::Close)
        }
    }
}

/// The state of a reply body being read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Decoder {
    /// This many bytes are left.
    Length(u64),
    /// A `chunked` body.
    Chunked(Chunked),
    /// Up to the connection's end.
    Close,
    /// The body has ended.
    Done,
}

/// Where a `chunked` decoder stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(super) struct Chunked {
    state: ChunkState,
    /// The chunk size being read, or the bytes left of the current chunk.
    size: u64,
    /// Bytes of extensions and trailers so far.
    overhead: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum ChunkState {
    /// At a chunk size, before its first digit.
    #[default]
    SizeStart,
    /// In the chunk size's digits.
    Size,
    /// Blanks after the size.
    SizeBlank,
    /// A chunk extension (`;name=value`), up to its line's end.
    Extension,
    /// The `\n` of the size line.
    SizeLf,
    /// The chunk's data (`size` bytes left).
    Data,
    /// The `\r` after the data.
    DataCr,
    /// The `\n` after the data.
    DataLf,
    /// At the start of a trailer line, or of the final empty line.
    TrailerStart,
    /// In a trailer line.
    Trailer,
    /// The `\n` of a trailer line.
    TrailerLf,
    /// The final `\n`.
    EndLf,
    /// After the final empty line.
    Done,
}

impl Decoder {
    /// Whether the body has been read to its end.
    pub(super) fn is_done(&self) -> bool {
        matches!(self, Decoder::Done)
    }

    /// The number of body bytes still to come, when known.
    pub(super) fn remaining(&self) -> Option<u64> {
        match self {
            Decoder::Length(left) => Some(*left),
            Decoder::Done => Some(0),
            _ => None,
        }
    }

    /// Takes the next part of the body out of `buf`: `Some` data, or `None` when `buf` holds no
    /// more of it (read more unless [`Decoder::is_done`]).
    pub(super) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
        match self {
            Decoder::Length(0) => {
                *self = Decoder::Done;
                Ok(None)
            }
            Decoder::Length(left) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let take = (*left).min(buf.len() as u64) as usize;
                *left -= take as u64;
                if *left == 0 {
                    *self = Decoder::Done;
                }
                Ok(Some(buf.split_to(take).freeze()))
            }
            Decoder::Close => {
                if buf.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(buf.split().freeze()))
                }
            }
            Decoder::Chunked(chunked) => {
                let (data, done) = chunked.decode(buf)?;
                if done {
                    *self = Decoder::Done;
                }
                Ok(data)
            }
            Decoder::Done => Ok(None),
        }
    }

    /// The connection ended: fine for a body that runs to it, an error inside any other.
    pub(super) fn end_of_input(&mut self) -> Result<(), WireError> {
        match self {
            Decoder::Close | Decoder::Done | Decoder::Length(0) => {
                *self = Decoder::Done;
                Ok(())
            }
            _ => Err(WireError::Incomplete),
        }
    }
}

impl Chunked {
    /// Consumes `buf` up to the next data (returned) or the body's end (`true`).
    fn decode(&mut self, buf: &mut BytesMut) -> Result<(Option<Bytes>, bool), WireError> {
        let mut used = 0;
        while used < buf.len() {
            if self.state == ChunkState::Data {
                // Framing bytes before the data go first, then the data as a slice.
                let _ = buf.split_to(used);
                let take = self.size.min(buf.len() as u64) as usize;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = ChunkState::DataCr;
                }
                return Ok((Some(buf.split_to(take).freeze()), false));
            }
            let byte = buf[used];
            used += 1;
            self.step(byte)?;
            if self.state == ChunkState::Done {
                let _ = buf.split_to(used);
                return Ok((None, true));
            }
        }
        let _ = buf.split_to(used);
        Ok((None, false))
    }

    /// One framing byte.
    fn step(&mut self, byte: u8) -> Result<(), WireError> {
        use ChunkState::*;
        let overhead = |chunked: &mut Chunked| {
            chunked.overhead += 1;
            if chunked.overhead > MAX_CHUNK_OVERHEAD {
                Err(WireError::Chunked(
                    "too many bytes of extensions or trailers",
                ))
            } else {
                Ok(())
            }
        };
        self.state = match (self.state, byte) {
            (SizeStart | Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = (byte as char).to_digit(16).unwrap_or(0) as u64;
                self.size = self
                    .size
                    .checked_mul(16)
                    .and_then(|size| size.checked_add(digit))
                    .ok_or(WireError::Chunked("chunk size too large"))?;
                Size
            }
            (Size | SizeBlank, b' ' | b'\t') => SizeBlank,
            (Size | SizeBlank, b';') => {
                overhead(self)?;
                Extension
            }
            (Size | SizeBlank | Extension, b'\r') => SizeLf,
            (Extension, b'\n') => return Err(WireError::Chunked("bare LF in a chunk extension")),
            (Extension, _) => {
                overhead(self)?;
                Extension
            }
            (SizeLf, b'\n') if self.size == 0 => TrailerStart,
            (SizeLf, b'\n') => Data,
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => {
                self.size = 0;
                SizeStart
            }
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | Trailer, b'\n') => {
                return Err(WireError::Chunked("bare LF in a trailer"));
            }
            (Trailer, b'\r') => TrailerLf,
            (TrailerStart | Trailer, _) => {
                overhead(self)?;
                Trailer
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            (SizeStart | Size | SizeBlank, _) => {
                return Err(WireError::Chunked("invalid chunk size line"));
            }
            (SizeLf | DataLf | TrailerLf | EndLf, _) => {
                return Err(WireError::Chunked("missing LF"));
            }
            (DataCr, _) => return Err(WireError::Chunked("chunk data longer than its size")),
            (Data | Done, _) => return Err(WireError::Chunked("unexpected state")),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn head(text: &[u8]) -> Result<Option<ReplyHead>, WireError> {
        parse_head(&mut BytesMut::from(text), &Method::GET)
    }

    fn whole(text: &[u8]) -> ReplyHead {
        head(text).unwrap().unwrap()
    }

    /// Decodes a body given in the parts `splits` cut it into; the data and whether it ended.
    fn decode_in_parts(decoder: &mut Decoder, body: &[u8], splits: &[usize]) -> (Vec<u8>, bool) {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut start = 0;
        for &end in splits.iter().chain([body.len()].iter()) {
            buf.extend_from_slice(&body[start..end]);
            start = end;
            while let Some(part) = decoder.decode(&mut buf).unwrap() {
                assert!(!part.is_empty());
                data.extend_from_slice(&part);
            }
        }
        (data, decoder.is_done())
    }

    const CHUNKED: &[u8] = b"5;name=value;other=\"quoted;\"\r\nhello\r\n1 ; ext\r\n,\r\nA\r\n world 123\r\n0;last\r\nTrailer-One: 1\r\nTrailer-Two: 2\r\n\r\n";

    #[test]
    fn a_chunked_body_with_extensions_and_trailers_decodes_at_every_split() {
        for split in 0..=CHUNKED.len() {
            let mut decoder = Decoder::Chunked(Chunked::default());
            let (data, done) = decode_in_parts(&mut decoder, CHUNKED, &[split]);
            assert_eq!(data, b"hello, world 123", "split at {split}");
            assert!(done, "split at {split}");
        }
        // Byte by byte.
        let mut decoder = Decoder::Chunked(Chunked::default());
        let splits: Vec<usize> = (1..CHUNKED.len()).collect();
        let (data, done) = decode_in_parts(&mut decoder, CHUNKED, &splits);
        assert_eq!((data.as_slice(), done), (&b"hello, world 123"[..], true));
        // What follows the body stays in the buffer.
        let mut buf = BytesMut::from(&b"3\r\nabc\r\n0\r\n\r\nHTTP/1.1"[..]);
        let mut decoder = Decoder::Chunked(Chunked::default());
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), "abc");
        assert_eq!(decoder.decode(&mut buf).unwrap(), None);
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"HTTP/1.1");
    }

    #[test]
    fn a_broken_chunked_body_is_a_clear_error() {
        for (body, message) in [
            (
                &b"x\r\n"[..],
                "invalid chunked body from the upstream: invalid chunk size line",
            ),
            (
                b"\r\n",
                "invalid chunked body from the upstream: invalid chunk size line",
            ),
            (
                b"3\r\nabcd\r\n",
                "invalid chunked body from the upstream: chunk data longer than its size",
            ),
            (
                b"3\rx",
                "invalid chunked body from the upstream: missing LF",
            ),
            (
                b"3;a\nb",
                "invalid chunked body from the upstream: bare LF in a chunk extension",
            ),
            (
                b"fffffffffffffffff\r\n",
                "invalid chunked body from the upstream: chunk size too large",
            ),
            (
                b"0\r\nx\n",
                "invalid chunked body from the upstream: bare LF in a trailer",
            ),
        ] {
            let mut decoder = Decoder::Chunked(Chunked::default());
            let mut buf = BytesMut::from(body);
            let error = loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("{body:?} decoded without an error"),
                    Err(error) => break error,
                }
            };
            assert_eq!(error.to_string(), message, "{body:?}");
        }
        // Endless extensions are cut off.
        let mut decoder = Decoder::Chunked(Chunked::default());
        let mut long = b"1;".to_vec();
        long.resize(40_000, b'x');
        assert!(decoder.decode(&mut BytesMut::from(&long[..])).is_err());
        // The connection ending inside a chunked or sized body is an error, not its end.
        let mut decoder = Decoder::Chunked(Chunked::default());
        assert_eq!(
            decoder
                .decode(&mut BytesMut::from(&b"3\r\nab"[..]))
                .unwrap()
                .unwrap(),
            "ab"
        );
        assert_eq!(
            decoder.end_of_input().unwrap_err().to_string(),
            "end of file before message completed"
        );
        assert!(Decoder::Length(3).end_of_input().is_err());
        let mut close = Decoder::Close;
        close.end_of_input().unwrap();
        assert!(close.is_done());
    }

    #[test]
    fn a_sized_body_decodes_at_every_split_and_leaves_what_follows() {
        let body = b"0123456789";
        for split in 0..=body.len() {
            let mut decoder = Decoder::Length(10);
            let (data, done) = decode_in_parts(&mut decoder, body, &[split]);
            assert_eq!(
                (data.as_slice(), done),
                (&body[..], true),
                "split at {split}"
            );
        }
        let mut buf = BytesMut::from(&b"abcdef"[..]);
        let mut decoder = Decoder::Length(4);
        assert_eq!(decoder.decode(&mut buf).unwrap().unwrap(), "abcd");
        assert!(decoder.is_done());
        assert_eq!(&buf[..], b"ef");
    }

    const REPLY: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: application/json;charset=UTF-8\r\nSet-Cookie: a=1\r\nX-Multi: one\r\nSet-Cookie: b=2\r\nContent-Length: 11\r\n\r\n{\"data\":1}\n";

    #[test]
    fn a_reply_head_parses_over_several_reads() {
        let end = REPLY.len() - 11;
        for split in 0..end {
            let mut buf = BytesMut::from(&REPLY[..split]);
            assert!(
                parse_head(&mut buf, &Method::GET).unwrap().is_none(),
                "{split}"
            );
            assert_eq!(buf.len(), split, "nothing is taken from a partial head");
            buf.extend_from_slice(&REPLY[split..]);
            let head = parse_head(&mut buf, &Method::GET).unwrap().unwrap();
            assert_eq!(head.status, StatusCode::OK);
            assert_eq!(head.version, Version::HTTP_11);
            assert!(head.keep_alive);
            assert_eq!(head.reason, None, "the canonical phrase is not kept");
            assert_eq!(head.body, Decoder::Length(11));
            assert_eq!(&buf[..], b"{\"data\":1}\n");
            // Names in lower case, repeated headers with their values in order.
            let cookies: Vec<&[u8]> = head
                .headers
                .get_all("set-cookie")
                .iter()
                .map(HeaderValue::as_bytes)
                .collect();
            assert_eq!(cookies, [&b"a=1"[..], b"b=2"]);
            let names: Vec<&str> = head.headers.keys().map(HeaderName::as_str).collect();
            assert_eq!(
                names,
                ["content-type", "set-cookie", "x-multi", "content-length"]
            );
        }
    }

    #[test]
    fn framing_follows_the_status_the_method_and_the_headers() {
        // Informational replies are skipped; no body for 204, 304, HEAD.
        let mut buf = BytesMut::from(
            &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..],
        );
        let reply = parse_head(&mut buf, &Method::POST).unwrap().unwrap();
        assert_eq!(
            (reply.status, reply.body.remaining()),
            (StatusCode::NO_CONTENT, Some(0))
        );
        assert!(reply.headers.is_empty() && buf.is_empty());
        let reply = whole(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(reply.body, Decoder::Length(0));
        let reply = parse_head(
            &mut BytesMut::from(&b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"[..]),
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!(reply.body, Decoder::Length(0));
        // A partial informational reply waits like any other.
        assert!(
            head(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 2")
                .unwrap()
                .is_none()
        );
        // Chunked wins over Content-Length, and then the connection is not reused.
        let reply = whole(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n",
        );
        assert_eq!(reply.body, Decoder::Chunked(Chunked::default()));
        assert!(!reply.keep_alive);
        // Another final encoding, or no length: up to the connection's end.
        for text in [
            &b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\n\r\n",
        ] {
            let reply = whole(text);
            assert_eq!(
                (reply.body.clone(), reply.keep_alive),
                (Decoder::Close, false)
            );
        }
        // Repeated equal lengths are one length.
        let reply = whole(b"HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(reply.body, Decoder::Length(3));
    }

    #[test]
    fn connection_close_and_http_1_0_decide_reuse() {
        let reply = whole(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        assert!(!reply.keep_alive);
        assert!(
            reply.headers.contains_key(header::CONNECTION),
            "passed on as received"
        );
        let reply = whole(b"HTTP/1.1 200 OK\r\nConnection: Upgrade, Close\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!reply.keep_alive, "a later keep-alive does not undo close");
        let reply = whole(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n");
        assert_eq!((reply.version, reply.keep_alive), (Version::HTTP_10, false));
        let reply =
            whole(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 2\r\n\r\n");
        assert!(reply.keep_alive);
        let reply = whole(b"HTTP/1.0 200 Fine Thanks\r\n\r\n");
        assert_eq!((reply.body, reply.keep_alive), (Decoder::Close, false));
        assert_eq!(reply.reason.as_deref(), Some(&b"Fine Thanks"[..]));
        let reply = whole(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert_eq!((reply.body, reply.keep_alive), (Decoder::Length(0), false));
    }

    #[test]
    fn bad_heads_are_clear_errors() {
        for (text, message) in [
            (&b"HTTP/2 200 OK\r\n\r\n"[..], "not an HTTP/1.x status line"),
            (b"SSH-2.0-OpenSSH_9.6\r\n", "not an HTTP/1.x status line"),
            (b"HTTP/1.1 abc OK\r\n\r\n", "invalid status code"),
            (
                b"HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
                "invalid header name",
            ),
            (
                b"HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
                "invalid header value",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 12x\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "invalid Content-Length",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
                "differing Content-Length values",
            ),
        ] {
            let error = head(text).unwrap_err().to_string();
            assert_eq!(
                error,
                format!("invalid reply head from the upstream: {message}"),
                "{}",
                String::from_utf8_lossy(text)
            );
        }
        let mut many = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(
            head(&many).unwrap_err().to_string(),
            "invalid reply head from the upstream: too many headers"
        );
        let mut huge = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        huge.resize(MAX_HEAD + 10, b'a');
        assert_eq!(
            head(&huge).unwrap_err().to_string(),
            "invalid reply head from the upstream: the head is too large"
        );
    }

    #[test]
    fn a_request_head_is_one_buffer_with_the_headers_in_order() {
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, HeaderValue::from_static("pve:8006"));
        headers.append("x-custom", HeaderValue::from_static("a"));
        headers.append(header::COOKIE, HeaderValue::from_static("c=1"));
        headers.append("x-custom", HeaderValue::from_static("b"));
        let mut out = Vec::new();
        encode_head(&Method::POST, "/api2/json/pools?x=1", &headers, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "POST /api2/json/pools?x=1 HTTP/1.1\r\nhost: pve:8006\r\nx-custom: a\r\nx-custom: b\r\ncookie: c=1\r\n\r\n"
        );
    }
}
