//! Stopping on a signal. The first SIGINT or SIGTERM is logged and asks every long loop of the
//! process (the merge-join of a scan, the reading of a large file, the wait for a package
//! manager, the watching of a tree) to stop at its next step, which is a fraction of a second
//! away: a scan then returns [`Error::Stopped`] and its update is dropped uncommitted, so the
//! baseline is as it was and the next start scans again. A second signal exits at once. The
//! process exits 128 + the signal's number (130, 143), as a shell reports a signal.
//!
//! The request is process-wide (a signal is), owned here: set only by the listener thread,
//! read by whoever loops.

use std::sync::atomic::{AtomicI32, Ordering};

use crate::{Error, Result};

/// The signal that asked to stop, 0 while none did.
static REQUESTED: AtomicI32 = AtomicI32::new(0);

/// Asks every loop to stop, for `signal` (a signal number).
pub fn request(signal: i32) {
    let _ = REQUESTED.compare_exchange(0, signal.max(1), Ordering::AcqRel, Ordering::Acquire);
}

/// The signal that asked to stop, if one did.
pub fn requested() -> Option<i32> {
    match REQUESTED.load(Ordering::Acquire) {
        0 => None,
        signal => Some(signal),
    }
}

/// `Err(Error::Stopped)` once a stop was asked for: the check every long loop makes.
pub fn check() -> Result<()> {
    match requested() {
        None => Ok(()),
        Some(signal) => Err(Error::Stopped { signal }),
    }
}

/// The exit code after a stop asked for by `signal`.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(255)
}

/// The name a log gives `signal`.
pub fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// Listens for SIGINT and SIGTERM on a thread of its own (a one-shot mode has no runtime);
/// `on_first` runs once, after the first one is logged and requested. Fails when the handlers
/// cannot be installed.
pub fn listen(on_first: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    // Installed here, before the thread starts: a signal right after start-up is caught.
    let (mut interrupt, mut terminate) = runtime.block_on(async {
        Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
    })?;
    std::thread::Builder::new()
        .name("kubefim-signals".into())
        .spawn(move || {
            runtime.block_on(async move {
                let mut on_first = Some(on_first);
                loop {
                    let signal = tokio::select! {
                        _ = interrupt.recv() => libc::SIGINT,
                        _ = terminate.recv() => libc::SIGTERM,
                    };
                    if let Some(first) = requested() {
                        tracing::warn!(signal = signal_name(signal), "second signal: exiting now");
                        std::process::exit(i32::from(exit_code(first)));
                    }
                    tracing::warn!(
                        signal = signal_name(signal),
                        "stopping: the scan in progress ends at its next step without writing anything (a second signal exits at once)"
                    );
                    request(signal);
                    if let Some(first) = on_first.take() {
                        first();
                    }
                }
            });
        })?;
    Ok(())
}
