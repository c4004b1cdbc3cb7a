//! Just enough HTTP/1.1 for JSON-RPC and Prometheus: request parsing, responses with a
//! `content-length`, keep-alive, and the RPC server's Host filter. No sockets here.

use std::fmt;
use std::io::{self, BufRead, Read, Write};

/// Longest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// True for HTTP/1.1 (and later), false for HTTP/1.0.
    pub http11: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (case-insensitive), trimmed.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path part of the request target (`/metrics?x` → `/metrics`).
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the connection stays open after the response (HTTP/1.1 default: yes).
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("");
        let has = |token: &str| {
            connection
                .split(',')
                .any(|t| t.trim().eq_ignore_ascii_case(token))
        };
        if self.http11 {
            !has("close")
        } else {
            has("keep-alive")
        }
    }
}

#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before a new request began: the normal end.
    Closed,
    Io(io::Error),
    /// Not HTTP we understand; answer 400 and close.
    Malformed(&'static str),
    /// The body is larger than allowed; answer 413 and close.
    TooLarge,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Closed => write!(f, "connection closed"),
            ReadError::Io(e) => write!(f, "{e}"),
            ReadError::Malformed(why) => write!(f, "malformed request: {why}"),
            ReadError::TooLarge => write!(f, "request body too large"),
        }
    }
}

impl From<io::Error> for ReadError {
    fn from(e: io::Error) -> ReadError {
        ReadError::Io(e)
    }
}

/// Reads one line, counting it against the head budget; `None` at end of input.
fn read_head_line<R: BufRead>(
    reader: &mut R,
    budget: &mut usize,
) -> Result<Option<String>, ReadError> {
    let mut line = Vec::new();
    let n = reader
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut line)?;
    if n == 0 {
        return Ok(None);
    }
    if n > *budget {
        return Err(ReadError::Malformed("request head too large"));
    }
    *budget -= n;
    if line.last() != Some(&b'\n') {
        return Err(ReadError::Malformed("request head cut short"));
    }
    let text =
        String::from_utf8(line).map_err(|_| ReadError::Malformed("request head is not UTF-8"))?;
    Ok(Some(text.trim_end_matches(['\r', '\n']).to_string()))
}

/// Reads one request: head, then a body delimited by `content-length` or chunked encoding.
pub fn read_request<R: BufRead>(reader: &mut R, max_body: usize) -> Result<Request, ReadError> {
    let mut budget = MAX_HEAD_BYTES;
    // RFC 9112 §2.2: a server should ignore empty lines before the request line.
    let request_line = loop {
        match read_head_line(reader, &mut budget)? {
            None => return Err(ReadError::Closed),
            Some(line) if line.is_empty() => continue,
            Some(line) => break line,
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Malformed("bad request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(ReadError::Malformed("unsupported HTTP version")),
    };
    let mut headers = Vec::new();
    loop {
        let line = read_head_line(reader, &mut budget)?
            .ok_or(ReadError::Malformed("request head cut short"))?;
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ReadError::Malformed("header without a colon"))?;
        if name.is_empty() || name.ends_with(' ') {
            return Err(ReadError::Malformed("bad header name"));
        }
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let mut request = Request {
        method: method.to_string(),
        target: target.to_string(),
        http11,
        headers,
        body: Vec::new(),
    };
    let chunked = request
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    if chunked {
        request.body = read_chunked_body(reader, max_body)?;
    } else if let Some(length) = request.header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| ReadError::Malformed("bad content-length"))?;
        if length > max_body {
            return Err(ReadError::TooLarge);
        }
        let mut body = vec![0u8; length];
        reader.read_exact(&mut body)?;
        request.body = body;
    }
    Ok(request)
}

fn read_chunked_body<R: BufRead>(reader: &mut R, max_body: usize) -> Result<Vec<u8>, ReadError> {
    let mut body = Vec::new();
    let mut budget = MAX_HEAD_BYTES;
    loop {
        let size_line = read_head_line(reader, &mut budget)?
            .ok_or(ReadError::Malformed("chunked body cut short"))?;
        let size_text = size_line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| ReadError::Malformed("bad chunk size"))?;
        if size == 0 {
            // Trailer fields (ignored), then the empty line.
            loop {
                let trailer = read_head_line(reader, &mut budget)?
                    .ok_or(ReadError::Malformed("chunked body cut short"))?;
                if trailer.is_empty() {
                    return Ok(body);
                }
            }
        }
        if body.len() + size > max_body {
            return Err(ReadError::TooLarge);
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
        if &crlf != b"\r\n" {
            return Err(ReadError::Malformed("chunk not followed by CRLF"));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// jsonrpsee's content type for JSON answers (`server/src/transport/http.rs`, `JSON`).
pub const JSON: &str = "application/json; charset=utf-8";
/// jsonrpsee's content type for its plain-text refusals (`TEXT`).
pub const TEXT: &str = "text/plain";

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type,
            body: body.into(),
        }
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        500 => "Internal Server Error",
        _ => "Unknown",
    }
}

/// The bytes of a response; `connection: close` is sent when the connection will end.
pub fn encode_response(response: &Response, keep_alive: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n",
        response.status,
        reason_phrase(response.status),
        response.content_type,
        response.body.len()
    );
    if !keep_alive {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&response.body);
    bytes
}

pub fn write_response<W: Write>(
    writer: &mut W,
    response: &Response,
    keep_alive: bool,
) -> io::Result<()> {
    writer.write_all(&encode_response(response, keep_alive))?;
    writer.flush()
}

/// The RPC server's Host filter (sc-rpc-server `utils.rs`, `host_filtering`): with the default
/// CORS settings only `localhost:PORT`, `127.0.0.1:PORT` and `[::1]:PORT` pass, PORT being the
/// port the node itself listens on. A Host without a port, or through a port mapping with
/// another number, is refused. Host names compare case-insensitively, as DNS names do.
pub fn host_allowed(host: Option<&str>, port: u16) -> bool {
    let Some(host) = host else {
        return false;
    };
    let host = host.trim();
    ["localhost", "127.0.0.1", "[::1]"]
        .iter()
        .any(|name| host.eq_ignore_ascii_case(&format!("{name}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Request, ReadError> {
        read_request(&mut raw.as_bytes(), 1024)
    }

    #[test]
    fn parses_a_post_with_a_body() {
        let request = parse(
            "POST / HTTP/1.1\r\nHost: localhost:9944\r\nContent-Type: application/json\r\n\
             Content-Length: 5\r\n\r\nhello",
        )
        .unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/");
        assert!(request.http11);
        assert_eq!(request.header("host"), Some("localhost:9944"));
        assert_eq!(request.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(request.body, b"hello");
        assert!(request.keep_alive());
    }

    #[test]
    fn reads_pipelined_requests_one_at_a_time() {
        let raw =
            "GET /metrics HTTP/1.1\r\n\r\nGET /x?y=1 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
        let mut reader = raw.as_bytes();
        let first = read_request(&mut reader, 1024).unwrap();
        assert_eq!(first.path(), "/metrics");
        let second = read_request(&mut reader, 1024).unwrap();
        assert_eq!(second.path(), "/x");
        assert!(!second.http11);
        assert!(second.keep_alive());
        assert!(matches!(
            read_request(&mut reader, 1024),
            Err(ReadError::Closed)
        ));
    }

    #[test]
    fn decides_keep_alive_by_version_and_header() {
        let close = parse("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap();
        assert!(!close.keep_alive());
        let old = parse("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!old.keep_alive());
    }

    #[test]
    fn decodes_chunked_bodies() {
        let request = parse(
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(request.body, b"abcde");
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(matches!(parse(""), Err(ReadError::Closed)));
        assert!(matches!(
            parse("GARBAGE\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/2\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"),
            Err(ReadError::TooLarge)
        ));
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Err(ReadError::Malformed(_))
        ));
        // A body shorter than announced is an I/O error (unexpected end of input).
        assert!(matches!(
            parse("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"),
            Err(ReadError::Io(_))
        ));
    }

    #[test]
    fn encodes_responses_with_length_and_close() {
        let response = Response::new(403, TEXT, "Provided Host header is not whitelisted.\n");
        let text = String::from_utf8(encode_response(&response, false)).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 41\r\n\
             connection: close\r\n\r\nProvided Host header is not whitelisted.\n"
        );
        let kept =
            String::from_utf8(encode_response(&Response::new(200, JSON, "{}"), true)).unwrap();
        assert!(!kept.contains("connection"));
    }

    #[test]
    fn host_filter_allows_only_loopback_names_with_our_port() {
        let cases = [
            (Some("localhost:9944"), true),
            (Some("127.0.0.1:9944"), true),
            (Some("[::1]:9944"), true),
            (Some("LocalHost:9944"), true),
            (Some("localhost:33980"), false), // through a port mapping
            (Some("localhost"), false),
            (Some("10.0.0.5:9944"), false),
            (Some("example.com:9944"), false),
            (None, false),
        ];
        for (host, allowed) in cases {
            assert_eq!(host_allowed(host, 9944), allowed, "{host:?}");
        }
    }
}
