//! Prompt, clean exit on SIGTERM and SIGINT.
//!
//! In its container the node is PID 1, and the kernel delivers no signal to PID 1 whose
//! disposition is the default: without handlers `docker stop` would wait its 10 s and then
//! kill. A real node installs handlers too (sc-cli `Signals::capture`, tokio's `signal`).
//!
//! The handler only `write`s one byte to a pipe, one of the few async-signal-safe calls; the
//! main thread blocks reading the other end and exits from ordinary code.
#![allow(unsafe_code)] // The three libc calls below; each states why it is sound.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::sync::atomic::{AtomicI32, Ordering};

/// Write end of the pipe, read by the handler; -1 until installed.
static WAKE_FD: AtomicI32 = AtomicI32::new(-1);

extern "C" fn on_signal(_signal: libc::c_int) {
    let fd = WAKE_FD.load(Ordering::Relaxed);
    if fd >= 0 {
        let byte = 1u8;
        // SAFETY: `write` is async-signal-safe; the buffer is a live local of length 1. The
        // result is ignored: if the pipe is full, a wake-up is already pending.
        unsafe {
            libc::write(fd, (&byte as *const u8).cast(), 1);
        }
    }
}

/// The read end: becomes readable once a termination signal has arrived.
pub struct Shutdown {
    pipe: File,
}

impl Shutdown {
    /// Blocks until SIGTERM or SIGINT arrives.
    pub fn wait(mut self) {
        let mut byte = [0u8; 1];
        // EINTR is retried by `read_exact`; any other error means no signal can be waited for.
        let _ = self.pipe.read_exact(&mut byte);
    }
}

/// Installs the handlers; call once, before other threads start.
pub fn install() -> io::Result<Shutdown> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for the two descriptors `pipe2` writes.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    WAKE_FD.store(fds[1], Ordering::Relaxed);
    for signal in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: a zeroed `sigaction` is a valid value (empty mask, no flags) which is then
        // filled in; `on_signal` has the signature `sa_sigaction` expects without SA_SIGINFO.
        let result = unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(signal, &action, std::ptr::null_mut())
        };
        if result != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    // SAFETY: `fds[0]` was just created by `pipe2` and is owned by nothing else.
    let pipe = unsafe { File::from_raw_fd(fds[0]) };
    Ok(Shutdown { pipe })
}
