//! `curl`, when the binary is invoked under that name: the small part of curl that operators
//! (and warden, through `docker exec <container> curl …`) use to reach a node's RPC bound to
//! the container's loopback. A real Creditcoin image carries curl; this image carries this.
//!
//! Behaviour kept from curl: `-d` makes a POST with `Content-Type:
//! application/x-www-form-urlencoded` unless a header says otherwise (so a forgotten `-H` gets
//! the node's 415, as with real curl); the body is printed whatever the HTTP status unless
//! `-f`; exit codes 7 (cannot connect), 28 (timeout), 22 (`-f` and status ≥ 400), 52 (empty
//! reply), 3 (bad URL), 2 (bad option); `-s` hides errors unless `-S`.
//! Left out: TLS, redirects, cookies, proxies, uploads, most options.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const USER_AGENT: &str = "curl/7.88.1";

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CurlArgs {
    pub silent: bool,
    pub show_error: bool,
    pub fail: bool,
    pub include: bool,
    pub headers: Vec<(String, String)>,
    pub data: Option<Vec<u8>>,
    pub method: Option<String>,
    pub max_time: Option<f64>,
    pub connect_timeout: Option<f64>,
    pub write_out: Option<String>,
    pub output: Option<String>,
    pub url: Option<String>,
}

/// A curl failure: its exit code and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurlError {
    pub code: i32,
    pub message: String,
}

impl CurlError {
    fn new(code: i32, message: impl Into<String>) -> CurlError {
        CurlError {
            code,
            message: message.into(),
        }
    }
}

/// How `-d`-like options treat their value.
enum DataKind {
    /// `-d`/`--data`: `@file` reads the file, dropping CR and LF.
    Ascii,
    /// `--data-binary`: `@file` reads the file as is.
    Binary,
    /// `--data-raw`: no `@` handling.
    Raw,
}

fn read_data(value: &str, kind: DataKind) -> Result<Vec<u8>, CurlError> {
    let from_file = |name: &str| -> Result<Vec<u8>, CurlError> {
        if name == "-" {
            let mut buf = Vec::new();
            io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| CurlError::new(26, format!("Failed to read stdin: {e}")))?;
            Ok(buf)
        } else {
            fs::read(name).map_err(|e| CurlError::new(26, format!("Failed to open {name}: {e}")))
        }
    };
    match (kind, value.strip_prefix('@')) {
        (DataKind::Ascii, Some(name)) => Ok(from_file(name)?
            .into_iter()
            .filter(|b| *b != b'\r' && *b != b'\n')
            .collect()),
        (DataKind::Binary, Some(name)) => from_file(name),
        _ => Ok(value.as_bytes().to_vec()),
    }
}

fn parse_seconds(option: &str, value: &str) -> Result<f64, CurlError> {
    value
        .parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.0)
        .ok_or_else(|| {
            CurlError::new(
                2,
                format!("option {option}: expected a proper numerical parameter"),
            )
        })
}

fn add_data(args: &mut CurlArgs, bytes: Vec<u8>) {
    // Several -d options are joined with '&', as curl does.
    match &mut args.data {
        Some(existing) => {
            existing.push(b'&');
            existing.extend(bytes);
        }
        None => args.data = Some(bytes),
    }
}

/// Parses curl's arguments (after the program name).
pub fn parse_args<I, S>(args: I) -> Result<CurlArgs, CurlError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut out = CurlArgs::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        // Short options may be bundled (`-sS`, `-fsSL`); one taking a value ends the bundle
        // and takes the rest of it, or the next argument (`-XPOST`, `-X POST`).
        let options: Vec<(String, Option<String>)> = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => vec![(format!("--{name}"), Some(value.to_string()))],
                None => vec![(arg.clone(), None)],
            }
        } else if arg.len() > 1 && arg.starts_with('-') {
            let mut bundle = Vec::new();
            let chars: Vec<char> = arg[1..].chars().collect();
            for (i, c) in chars.iter().enumerate() {
                if "HdXmwo".contains(*c) {
                    let rest: String = chars[i + 1..].iter().collect();
                    bundle.push((format!("-{c}"), (!rest.is_empty()).then_some(rest)));
                    break;
                }
                bundle.push((format!("-{c}"), None));
            }
            bundle
        } else {
            if out.url.is_none() {
                out.url = Some(arg);
            }
            continue;
        };
        for (option, inline) in options {
            let mut value = || {
                inline.clone().or_else(|| args.next()).ok_or_else(|| {
                    CurlError::new(2, format!("option {option}: requires parameter"))
                })
            };
            match option.as_str() {
                "-s" | "--silent" => out.silent = true,
                "-S" | "--show-error" => out.show_error = true,
                "-f" | "--fail" => out.fail = true,
                "-i" | "--include" => out.include = true,
                "-H" | "--header" => {
                    let header = value()?;
                    if let Some((name, val)) = header.split_once(':') {
                        out.headers
                            .push((name.trim().to_string(), val.trim().to_string()));
                    }
                }
                "-d" | "--data" | "--data-ascii" => {
                    let bytes = read_data(&value()?, DataKind::Ascii)?;
                    add_data(&mut out, bytes);
                }
                "--data-binary" => {
                    let bytes = read_data(&value()?, DataKind::Binary)?;
                    add_data(&mut out, bytes);
                }
                "--data-raw" => {
                    let bytes = read_data(&value()?, DataKind::Raw)?;
                    add_data(&mut out, bytes);
                }
                "--json" => {
                    let bytes = read_data(&value()?, DataKind::Binary)?;
                    add_data(&mut out, bytes);
                    for (name, val) in [
                        ("Content-Type", "application/json"),
                        ("Accept", "application/json"),
                    ] {
                        if !out
                            .headers
                            .iter()
                            .any(|(n, _)| n.eq_ignore_ascii_case(name))
                        {
                            out.headers.push((name.to_string(), val.to_string()));
                        }
                    }
                }
                "-X" | "--request" => out.method = Some(value()?),
                "-m" | "--max-time" => out.max_time = Some(parse_seconds(&option, &value()?)?),
                "--connect-timeout" => {
                    out.connect_timeout = Some(parse_seconds(&option, &value()?)?)
                }
                "-w" | "--write-out" => out.write_out = Some(value()?),
                "-o" | "--output" => out.output = Some(value()?),
                "--url" => out.url = Some(value()?),
                _ => {
                    return Err(CurlError::new(2, format!("option {option}: is unknown")));
                }
            }
        }
    }
    Ok(out)
}

/// The parts of an `http://` URL curl needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// What goes in the Host header: the host as written, with the port unless it is 80.
    pub host_header: String,
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Url, CurlError> {
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) => {
            return Err(CurlError::new(
                1,
                format!("Protocol \"{scheme}\" not supported"),
            ));
        }
        None => url,
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let bad = || {
        CurlError::new(
            3,
            format!("URL using bad/illegal format or missing URL: {url}"),
        )
    };
    let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
        let (inside, after) = v6.split_once(']').ok_or_else(bad)?;
        (format!("[{inside}]"), after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        }
    };
    if host.is_empty() || host == "[]" {
        return Err(bad());
    }
    let port = match port_text {
        Some(p) => p.parse::<u16>().map_err(|_| bad())?,
        None => 80,
    };
    let host_header = if port == 80 {
        host.clone()
    } else {
        format!("{host}:{port}")
    };
    Ok(Url {
        host,
        port,
        host_header,
        path,
    })
}

/// The request bytes curl would send.
pub fn build_request(args: &CurlArgs, url: &Url) -> Vec<u8> {
    let method = args
        .method
        .clone()
        .unwrap_or_else(|| if args.data.is_some() { "POST" } else { "GET" }.to_string());
    let has = |name: &str| {
        args.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut head = format!("{method} {} HTTP/1.1\r\n", url.path);
    for (name, default) in [
        ("Host", url.host_header.as_str()),
        ("User-Agent", USER_AGENT),
        ("Accept", "*/*"),
    ] {
        if !has(name) {
            head.push_str(&format!("{name}: {default}\r\n"));
        }
    }
    for (name, value) in &args.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(data) = &args.data {
        if !has("Content-Type") {
            head.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
        }
        head.push_str(&format!("Content-Length: {}\r\n", data.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(data) = &args.data {
        bytes.extend_from_slice(data);
    }
    bytes
}

/// Addresses to try for a host: names are resolved here for `localhost` and IP literals, as
/// a static binary in a bare container has no resolver configuration to rely on.
fn addresses(url: &Url) -> Result<Vec<SocketAddr>, CurlError> {
    let host = url.host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(vec![
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), url.port),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), url.port),
        ]);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, url.port)]);
    }
    (host, url.port)
        .to_socket_addrs()
        .map(Iterator::collect)
        .map_err(|_| CurlError::new(6, format!("Could not resolve host: {host}")))
}

/// A response as read off the wire.
struct Reply {
    status: u16,
    head: Vec<u8>,
    body: Vec<u8>,
}

fn timed_out(start: Instant, received: usize) -> CurlError {
    CurlError::new(
        28,
        format!(
            "Operation timed out after {} milliseconds with {received} bytes received",
            start.elapsed().as_millis()
        ),
    )
}

fn exchange(args: &CurlArgs, url: &Url, start: Instant) -> Result<Reply, CurlError> {
    let max_time = args
        .max_time
        .filter(|t| *t > 0.0)
        .map(Duration::from_secs_f64);
    let connect_limit = args
        .connect_timeout
        .filter(|t| *t > 0.0)
        .map(Duration::from_secs_f64)
        .or(max_time)
        .unwrap_or(Duration::from_secs(300));
    let remaining = || max_time.map(|limit| limit.saturating_sub(start.elapsed()));

    let mut stream = None;
    for addr in addresses(url)? {
        if let Ok(s) = TcpStream::connect_timeout(&addr, connect_limit) {
            stream = Some(s);
            break;
        }
    }
    let stream = stream.ok_or_else(|| {
        CurlError::new(
            7,
            format!(
                "Failed to connect to {} port {} after {} ms: Couldn't connect to server",
                url.host,
                url.port,
                start.elapsed().as_millis()
            ),
        )
    })?;
    let io_error = |e: io::Error, received: usize| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => timed_out(start, received),
        _ => CurlError::new(56, format!("Recv failure: {e}")),
    };
    let set_deadline = |received: usize| -> Result<(), CurlError> {
        match remaining() {
            Some(left) if left.is_zero() => Err(timed_out(start, received)),
            left => stream
                .set_read_timeout(left)
                .map_err(|e| io_error(e, received)),
        }
    };
    (&stream)
        .write_all(&build_request(args, url))
        .map_err(|e| CurlError::new(55, format!("Failed sending data to the peer: {e}")))?;

    let mut reader = BufReader::new(&stream);
    let mut head = Vec::new();
    loop {
        set_deadline(head.len())?;
        let before = head.len();
        let n = reader
            .read_until(b'\n', &mut head)
            .map_err(|e| io_error(e, head.len()))?;
        if n == 0 {
            return Err(if head.is_empty() {
                CurlError::new(52, "Empty reply from server")
            } else {
                CurlError::new(56, "Recv failure: Connection reset by peer")
            });
        }
        if head[before..] == *b"\r\n" || head[before..] == *b"\n" {
            break;
        }
    }
    let head_text = String::from_utf8_lossy(&head).to_string();
    let status = head_text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CurlError::new(8, "Weird server reply"))?;
    let header = |name: &str| {
        head_text.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let mut body = Vec::new();
    if let Some(length) = header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(length, 0);
        let mut filled = 0;
        while filled < length {
            set_deadline(filled)?;
            match reader.read(&mut body[filled..]) {
                Ok(0) => {
                    return Err(CurlError::new(
                        18,
                        "transfer closed with outstanding read data remaining",
                    ));
                }
                Ok(n) => filled += n,
                Err(e) => return Err(io_error(e, filled)),
            }
        }
    } else if header("transfer-encoding")
        .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
    {
        loop {
            set_deadline(body.len())?;
            let mut line = String::new();
            reader
                .read_line(&mut line)
                .map_err(|e| io_error(e, body.len()))?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| CurlError::new(56, "Recv failure: bad chunk"))?;
            let mut chunk = vec![0u8; size + 2];
            reader
                .read_exact(&mut chunk)
                .map_err(|e| io_error(e, body.len()))?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        loop {
            set_deadline(body.len())?;
            let mut buf = [0u8; 8192];
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => body.extend_from_slice(&buf[..n]),
                Err(e) => return Err(io_error(e, body.len())),
            }
        }
    }
    Ok(Reply { status, head, body })
}

/// `-w`: `%{http_code}` and the `\n` escape, which is what scripts use.
pub fn write_out(format: &str, status: u16) -> String {
    format
        .replace("%{http_code}", &format!("{status:03}"))
        .replace("%{response_code}", &format!("{status:03}"))
        .replace("\\n", "\n")
}

fn run(args: &CurlArgs) -> Result<(), CurlError> {
    let start = Instant::now();
    let url = parse_url(
        args.url
            .as_deref()
            .ok_or_else(|| CurlError::new(2, "no URL specified"))?,
    )?;
    let reply = exchange(args, &url, start)?;
    if args.fail && reply.status >= 400 {
        return Err(CurlError::new(
            22,
            format!("The requested URL returned error: {}", reply.status),
        ));
    }
    let mut output = Vec::new();
    if args.include {
        output.extend_from_slice(&reply.head);
    }
    output.extend_from_slice(&reply.body);
    match args.output.as_deref() {
        None | Some("-") => {
            let mut stdout = io::stdout().lock();
            let _ = stdout.write_all(&output);
            let _ = stdout.flush();
        }
        Some(path) => fs::write(path, &output).map_err(|e| {
            CurlError::new(23, format!("Failure writing output to destination: {e}"))
        })?,
    }
    if let Some(format) = &args.write_out {
        print!("{}", write_out(format, reply.status));
    }
    Ok(())
}

/// curl's entry point: returns the exit code.
pub fn main(args: Vec<String>) -> i32 {
    let parsed = match parse_args(args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("curl: {}", e.message);
            eprintln!("curl: try 'curl --help' for more information");
            return e.code;
        }
    };
    match run(&parsed) {
        Ok(()) => 0,
        Err(e) => {
            if !parsed.silent || parsed.show_error {
                eprintln!("curl: ({}) {}", e.code, e.message);
            }
            e.code
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_rpc_call() {
        let args = parse_args([
            "-sS",
            "-H",
            "Content-Type: application/json",
            "-d",
            r#"{"id":1}"#,
            "--max-time",
            "2.5",
            "http://localhost:9944/",
        ])
        .unwrap();
        assert!(args.silent && args.show_error && !args.fail);
        assert_eq!(
            args.headers,
            vec![("Content-Type".to_string(), "application/json".to_string())]
        );
        assert_eq!(args.data.as_deref(), Some(&br#"{"id":1}"#[..]));
        assert_eq!(args.max_time, Some(2.5));
        assert_eq!(args.url.as_deref(), Some("http://localhost:9944/"));
    }

    #[test]
    fn bundles_and_attached_values() {
        let args = parse_args(["-fsSXPOST", "--data=a", "-d", "b", "-m3", "localhost:1"]).unwrap();
        assert!(args.fail && args.silent && args.show_error);
        assert_eq!(args.method.as_deref(), Some("POST"));
        assert_eq!(args.data.as_deref(), Some(&b"a&b"[..]));
        assert_eq!(args.max_time, Some(3.0));
        assert_eq!(parse_args(["--bogus"]).unwrap_err().code, 2);
        assert_eq!(parse_args(["-H"]).unwrap_err().code, 2);
        assert_eq!(parse_args(["-m", "soon"]).unwrap_err().code, 2);
    }

    #[test]
    fn parses_urls() {
        let url = parse_url("http://localhost:9944/").unwrap();
        assert_eq!(
            (url.host.as_str(), url.port, url.path.as_str()),
            ("localhost", 9944, "/")
        );
        assert_eq!(url.host_header, "localhost:9944");
        let v6 = parse_url("http://[::1]:9944").unwrap();
        assert_eq!(
            (v6.host_header.as_str(), v6.path.as_str()),
            ("[::1]:9944", "/")
        );
        let bare = parse_url("127.0.0.1:9615/metrics?x=1").unwrap();
        assert_eq!((bare.port, bare.path.as_str()), (9615, "/metrics?x=1"));
        assert_eq!(
            parse_url("http://example.com").unwrap().host_header,
            "example.com"
        );
        assert_eq!(parse_url("https://x").unwrap_err().code, 1);
        assert_eq!(parse_url("http://:80").unwrap_err().code, 3);
        assert_eq!(parse_url("http://h:99999").unwrap_err().code, 3);
    }

    #[test]
    fn data_posts_as_a_form_unless_told_otherwise() {
        let url = parse_url("http://localhost:9944").unwrap();
        let form = parse_args(["-d", "{}", "localhost:9944"]).unwrap();
        let text = String::from_utf8(build_request(&form, &url)).unwrap();
        assert!(
            text.starts_with("POST / HTTP/1.1\r\nHost: localhost:9944\r\n"),
            "{text}"
        );
        assert!(text.contains("Content-Type: application/x-www-form-urlencoded\r\n"));
        assert!(text.ends_with("Content-Length: 2\r\n\r\n{}"));
        let json = parse_args(["-H", "content-type: application/json", "-d", "{}", "x"]).unwrap();
        let text = String::from_utf8(build_request(&json, &url)).unwrap();
        assert!(text.contains("content-type: application/json\r\n"));
        assert!(!text.contains("x-www-form-urlencoded"));
        let get = String::from_utf8(build_request(&CurlArgs::default(), &url)).unwrap();
        assert!(get.starts_with("GET / HTTP/1.1\r\n"));
        let host = parse_args(["-H", "Host: localhost:9944", "x"]).unwrap();
        let mapped = parse_url("http://127.0.0.1:33980").unwrap();
        let text = String::from_utf8(build_request(&host, &mapped)).unwrap();
        assert_eq!(text.matches("Host:").count(), 1);
        assert!(text.contains("Host: localhost:9944\r\n"));
    }

    #[test]
    fn json_option_sets_both_headers() {
        let args = parse_args(["--json", "{}", "x"]).unwrap();
        assert_eq!(args.headers.len(), 2);
        assert!(
            args.headers
                .contains(&("Content-Type".to_string(), "application/json".to_string()))
        );
    }

    #[test]
    fn write_out_formats_the_status() {
        assert_eq!(write_out("%{http_code}\\n", 403), "403\n");
    }

    #[test]
    fn connection_refused_is_exit_7() {
        // Bind then drop a listener to find a port nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let args = parse_args(["-s", &format!("http://127.0.0.1:{port}/")]).unwrap();
        assert_eq!(run(&args).unwrap_err().code, 7);
    }
}
