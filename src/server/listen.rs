//! The agents' listening socket. std's `TcpListener::bind` asks for a
//! backlog of 128: when a fleet reconnects at once (a server restart), the
//! kernel's accept queue overflows, and with SYN cookies the agents' first
//! bytes meet a reset. This binds the same way with a backlog of
//! [`BACKLOG`] (the kernel caps it at `net.core.somaxconn`).
use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

pub const BACKLOG: i32 = 4096;

/// Bind `addr` (the first of its addresses that binds), SO_REUSEADDR set as
/// std does, and listen with [`BACKLOG`].
pub fn bind(addr: &str) -> io::Result<TcpListener> {
    let mut last = io::Error::new(
        io::ErrorKind::NotFound,
        format!("{addr} resolves to no address"),
    );
    for address in addr.to_socket_addrs()? {
        match bind_one(address) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn bind_one(address: SocketAddr) -> io::Result<TcpListener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, sockopt};
    let family = if address.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let fd = rustix::net::socket_with(family, SocketType::STREAM, SocketFlags::CLOEXEC, None)?;
    sockopt::set_socket_reuseaddr(&fd, true)?;
    rustix::net::bind(&fd, &address)?;
    rustix::net::listen(&fd, BACKLOG)?;
    Ok(TcpListener::from(fd))
}

#[cfg(test)]
mod tests {
    #[test]
    fn binds_port_zero_and_accepts() {
        let listener = super::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        assert!(listener.accept().is_ok());
        assert!(super::bind(&addr.to_string()).is_err(), "the port is taken");
    }
}
