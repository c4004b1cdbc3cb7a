//! The server under test as a child process: started with its operator
//! stdin piped to us (commands are typed there), its stdout drained on a
//! thread (so it never blocks printing outcomes), its CPU and memory read
//! from /proc. Also registers the agents' tokens with `warden token add`.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub enum Kind {
    Warden(PathBuf),
    /// The original design re-created: interpreter, script.
    Python(PathBuf, PathBuf),
}

pub struct Server {
    child: Child,
    stdin: ChildStdin,
    pub addr: std::net::SocketAddr,
    /// The admin listener's address, once printed (`--admin-listen`).
    admin: mpsc::Receiver<std::net::SocketAddr>,
}

impl Server {
    pub fn start(
        kind: &Kind,
        data_dir: &Path,
        tls: Option<(&Path, &Path)>,
        stderr_log: &Path,
        extra_args: &[&str],
    ) -> Result<Server, String> {
        let mut command = match kind {
            Kind::Warden(bin) => {
                let mut c = Command::new(bin);
                c.arg("server").arg("--data-dir").arg(data_dir);
                c
            }
            Kind::Python(python, script) => {
                let mut c = Command::new(python);
                c.arg(script).arg("--data-dir").arg(data_dir);
                c
            }
        };
        command.args(["--listen", "127.0.0.1:0"]).args(extra_args);
        if let Some((cert, key)) = tls {
            command
                .arg("--tls-cert")
                .arg(cert)
                .arg("--tls-key")
                .arg(key);
        }
        let log = std::fs::File::create(stderr_log).map_err(|e| e.to_string())?;
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (addr_tx, addr_rx) = mpsc::channel();
        let (admin_tx, admin_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("server-stdout".into())
            .spawn(move || {
                let mut addr_tx = Some(addr_tx);
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(addr) = line.strip_prefix("admin: ").and_then(find_addr) {
                        let _ = admin_tx.send(addr);
                    } else if let Some(tx) = &addr_tx
                        && let Some(addr) = find_addr(&line)
                    {
                        let _ = tx.send(addr);
                        addr_tx = None;
                    }
                }
            })
            .map_err(|e| e.to_string())?;
        let mut server = Server {
            child,
            stdin,
            addr: "127.0.0.1:0".parse().map_err(|_| "addr")?,
            admin: admin_rx,
        };
        match addr_rx.recv_timeout(Duration::from_secs(20)) {
            Ok(addr) => server.addr = addr,
            Err(_) => {
                server.stop();
                return Err(format!(
                    "the server printed no address within 20 s; see {}",
                    stderr_log.display()
                ));
            }
        }
        Ok(server)
    }

    /// The admin listener's address, if the server prints one within 20 s.
    pub fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin.recv_timeout(Duration::from_secs(20)).ok()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types one operator line.
    pub fn type_line(&mut self, line: &str) -> Result<(), String> {
        writeln!(self.stdin, "{line}")
            .and_then(|()| self.stdin.flush())
            .map_err(|e| format!("server stdin: {e}"))
    }

    /// `quit`, then a kill if it has not exited within 10 s.
    pub fn stop(&mut self) {
        let _ = self.type_line("quit");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `127.0.0.1:PORT` anywhere in a line.
fn find_addr(line: &str) -> Option<std::net::SocketAddr> {
    let start = line.find("127.0.0.1:")?;
    let rest = &line[start..];
    let end = rest
        .char_indices()
        .skip("127.0.0.1:".len())
        .find(|(_, c)| !c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    rest[..end].parse().ok()
}

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The command name (field 2) may hold spaces: count fields after its ')'.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
pub const TICKS_PER_S: f64 = 100.0;

/// VmRSS of `pid` in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Tokens for agents `a0..a{n}`, registered once in `cache` (a data dir
/// plus `tokens.txt`) and reused by later runs: `token add` rewrites the
/// whole registry each time, so 5,000 of them take a while. Runs `workers`
/// `token add`s at once (the command is safe to run concurrently).
pub fn tokens(
    warden: &Path,
    cache: &Path,
    n: usize,
    workers: usize,
) -> Result<Vec<String>, String> {
    let list = cache.join("tokens.txt");
    let mut known: Vec<String> = std::fs::read_to_string(&list)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    if known.len() >= n {
        known.truncate(n);
        return Ok(known);
    }
    let data_dir = cache.join("server");
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let from = known.len();
    let next = std::sync::atomic::AtomicUsize::new(from);
    let results: Vec<Result<Vec<(usize, String)>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if k >= n {
                            return Ok(mine);
                        }
                        mine.push((k, token_add(warden, &[&format!("a{k}")], &data_dir)?));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("worker panicked".into())))
            .collect()
    });
    let mut fresh = Vec::new();
    for r in results {
        fresh.extend(r?);
    }
    fresh.sort();
    known.extend(fresh.into_iter().map(|(_, t)| t));
    std::fs::write(&list, known.join("\n") + "\n").map_err(|e| e.to_string())?;
    eprintln!(
        "loadgen: registered {} agents with `token add` ({workers} at a time) in {:.1} s",
        n - from,
        started.elapsed().as_secs_f64()
    );
    Ok(known)
}

/// Registers operator `bench` in `data_dir` (`token add --operator`): its token.
pub fn operator_token(warden: &Path, data_dir: &Path) -> Result<String, String> {
    token_add(warden, &["--operator", "bench"], data_dir)
}

/// `warden token add ARGS --data-dir DIR`: the token it printed.
fn token_add(warden: &Path, args: &[&str], data_dir: &Path) -> Result<String, String> {
    let out = Command::new(warden)
        .args(["token", "add"])
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "token add {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Copies the cached registry into a fresh data dir, and writes
/// `tokens.txt` (`<agent id> <token>` per line) there for servers that are
/// not warden.
pub fn prepare_data_dir(cache: &Path, dest: &Path, tokens: &[String]) -> Result<(), String> {
    std::fs::create_dir_all(dest).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(cache.join("server")).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        if entry.file_type().map_err(|e| e.to_string())?.is_file() {
            std::fs::copy(entry.path(), dest.join(entry.file_name())).map_err(|e| e.to_string())?;
        }
    }
    let lines: String = tokens
        .iter()
        .enumerate()
        .map(|(k, t)| format!("a{k} {t}\n"))
        .collect();
    std::fs::write(dest.join("loadgen-tokens.txt"), lines).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_bound_address() {
        assert_eq!(
            super::find_addr("listening on ws://127.0.0.1:40123/agent").map(|a| a.port()),
            Some(40123)
        );
        assert_eq!(super::find_addr("nothing here"), None);
    }
}
