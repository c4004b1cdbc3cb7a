//! The dashboard's HTTP/1.1 requests: a bounded parser of the request line,
//! headers and body, and the response writer. One request per connection
//! (`Connection: close`), like the admin listener it runs in.
//!
//! Bounds: a head of at most [`MAX_HEAD_BYTES`], at most [`MAX_HEADERS`]
//! headers, a body of at most [`MAX_BODY_BYTES`] (by `Content-Length`;
//! chunked bodies are refused). Errors are HTTP status codes.
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};

pub const MAX_HEAD_BYTES: u64 = 8 * 1024;
pub const MAX_HEADERS: usize = 64;
pub const MAX_BODY_BYTES: usize = 16 * 1024;

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Request {
    pub method: String,
    /// Without the query string.
    pub path: String,
    pub query: String,
    /// Lowercased names; a repeated header keeps its last value.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    /// The value of cookie `name`, if sent.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.header("cookie")?.split(';').find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
    }

    /// A query-string or form (`application/x-www-form-urlencoded`) field.
    pub fn field(text: &str, name: &str) -> Option<String> {
        text.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k) == name).then(|| percent_decode(v))
        })
    }
}

/// `a+b%20c` → `a b c`; invalid escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi * 16 + lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_digit(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Read one request (head and body), bounded.
pub fn read_request(stream: impl Read) -> Result<Request, u16> {
    let mut reader = BufReader::new(stream.take(MAX_HEAD_BYTES + MAX_BODY_BYTES as u64));
    let mut first = String::new();
    reader.read_line(&mut first).map_err(|_| 400u16)?;
    if !first.ends_with('\n') {
        return Err(if first.len() as u64 >= MAX_HEAD_BYTES {
            431
        } else {
            400
        });
    }
    let mut parts = first.split_whitespace();
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if !version.starts_with("HTTP/1.") || parts.next().is_some() {
        return Err(400);
    }
    let mut headers = BTreeMap::new();
    let mut total = first.len() as u64;
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).map_err(|_| 400u16)?;
        total += n as u64;
        if total > MAX_HEAD_BYTES {
            return Err(431);
        }
        if !line.ends_with('\n') {
            return Err(400);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if headers.len() >= MAX_HEADERS {
            return Err(431);
        }
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    if headers.contains_key("transfer-encoding") {
        return Err(411);
    }
    let length = match headers.get("content-length") {
        Some(v) => v.parse::<usize>().map_err(|_| 400u16)?,
        None => 0,
    };
    if length > MAX_BODY_BYTES {
        return Err(413);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).map_err(|_| 400u16)?;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body,
    })
}

#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    pub code: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(code: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            code,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn text(code: u16, body: &str) -> Response {
        Response::new(code, "text/plain; charset=utf-8", body)
    }

    pub fn json(code: u16, value: &serde_json::Value) -> Response {
        Response::new(code, "application/json", value.to_string())
    }

    /// A redirect to a relative location: right behind a proxy with a prefix.
    pub fn see_other(location: &str) -> Response {
        Response::text(303, "").with("Location", location.to_string())
    }

    pub fn with(mut self, name: &'static str, value: String) -> Response {
        self.headers.push((name, value));
        self
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn reason(code: u16) -> &'static str {
    match code {
        101 => "Switching Protocols",
        200 => "OK",
        303 => "See Other",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        504 => "Gateway Timeout",
        _ => "Service Unavailable",
    }
}

/// What every dashboard answer carries besides its own headers: no caching,
/// no sniffing, no framing, nothing loaded from elsewhere.
const DASHBOARD_HEADERS: [(&str, &str); 5] = [
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    ),
];

/// A dashboard answer: [`write_answer`] with [`DASHBOARD_HEADERS`] first.
pub fn write_response(stream: impl Write, response: &Response, head_only: bool) -> io::Result<()> {
    let headers: Vec<(&str, &str)> = DASHBOARD_HEADERS
        .into_iter()
        .chain(response.headers.iter().map(|(n, v)| (*n, v.as_str())))
        .collect();
    write_answer(
        stream,
        response.code,
        response.content_type,
        &headers,
        &response.body,
        head_only,
    )
}

/// Writes one answer on a `Connection: close` connection: the status line,
/// `Content-Type`, `Content-Length`, `headers` in order, then `body` unless
/// `head_only` (a HEAD request still learns the length). The one writer of
/// both the dashboard's answers and the admin listener's own.
pub fn write_answer(
    mut stream: impl Write,
    code: u16,
    content_type: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason(code),
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    stream.write_all(out.as_bytes())?;
    if !head_only {
        stream.write_all(body)?;
    }
    stream.flush()
}
