//! SIGTERM and SIGINT as ordinary events: a named thread receives them
//! (signal-hook does the async-signal-safe part) and calls back.
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::io;
use std::thread;

/// Call `on_signal` for every SIGTERM or SIGINT, on its own thread.
pub fn on_terminate(mut on_signal: impl FnMut(&'static str) + Send + 'static) -> io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for signal in signals.forever() {
                on_signal(if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                });
            }
        })?;
    Ok(())
}
