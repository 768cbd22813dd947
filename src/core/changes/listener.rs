//! The PostgreSQL side of [`super::Changes`]: a thread that keeps one `LISTEN`ing
//! connection up and turns its notifications into an eventfd's readiness.

use crate::core::store::db::pg::{PgConn, Target};
use anyhow::{Context, Result};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::{mpsc, Arc, Weak};
use std::time::{Duration, Instant};

/// The first retry after a failure; doubled per failure up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lived this long was healthy: the next failure starts from
/// [`MIN_BACKOFF`] again. A server that accepts and then drops every connection at once
/// keeps the backoff growing instead of being retried in a loop.
const STEADY: Duration = Duration::from_secs(10);
/// How often an idle listener checks whether its owner is gone (nothing else wakes it).
const OWNER_CHECK: Duration = Duration::from_secs(30);

/// Listens on its own thread; dropping it ends the thread within [`OWNER_CHECK`].
pub struct Listener {
    bell: Arc<Bell>,
    first_error: Option<String>,
}

impl Listener {
    /// Starts listening for `target`'s notifications, waiting for the first connection
    /// attempt so that what changes after this returns is heard when it succeeded.
    pub fn start(target: Target, log: Option<fn(&str)>) -> Result<Self> {
        let bell = Arc::new(Bell::new().context("cannot create an eventfd")?);
        let weak = Arc::downgrade(&bell);
        let (first_tx, first_rx) = mpsc::channel();
        let timeout = crate::core::settings::get().connect_timeout;
        std::thread::Builder::new()
            .name("listen".into())
            .spawn(move || supervise(&target, &weak, first_tx, log, timeout))
            .context("cannot start the listening thread")?;
        // The connect timeout bounds the attempt; a TLS handshake may add a little.
        let first_error = match first_rx.recv_timeout(timeout + Duration::from_secs(2)) {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e),
            Err(_) => Some("still connecting to the database to listen".into()),
        };
        Ok(Self { bell, first_error })
    }

    /// Why the first connection attempt failed, if it did.
    pub fn first_error(&self) -> Option<&str> {
        self.first_error.as_deref()
    }

    pub fn drain(&self) -> bool {
        self.bell.drain()
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.bell.0.as_raw_fd()
    }
}

/// Connects, listens and forwards notifications until the owner is gone; reconnects
/// with backoff whenever the connection fails or breaks.
fn supervise(
    target: &Target,
    bell: &Weak<Bell>,
    first: mpsc::Sender<Result<(), String>>,
    log: Option<fn(&str)>,
    timeout: Duration,
) {
    let say = |msg: &str| {
        if let Some(f) = log {
            f(msg);
        }
    };
    let mut first = Some(first);
    let mut backoff = MIN_BACKOFF;
    // Set while the connection is down and that was logged: one line per outage.
    let mut down = false;
    loop {
        match PgConn::listener(target, timeout) {
            Ok(conn) => {
                match first.take() {
                    Some(f) => {
                        let _ = f.send(Ok(()));
                    }
                    // Notifications sent while we were away are lost: report a change so
                    // the owner looks again.
                    None => {
                        if !ring(bell) {
                            return;
                        }
                    }
                }
                if down {
                    say("hearing the database's changes again");
                    down = false;
                }
                let since = Instant::now();
                let why = loop {
                    match conn.wait(OWNER_CHECK) {
                        Ok(true) => {
                            if !ring(bell) {
                                return;
                            }
                        }
                        Ok(false) => {
                            if bell.strong_count() == 0 {
                                return;
                            }
                        }
                        Err(e) => break e,
                    }
                };
                if since.elapsed() >= STEADY {
                    backoff = MIN_BACKOFF;
                }
                if !down {
                    say(&format!(
                        "stopped hearing the database's changes ({why:#}); reconnecting"
                    ));
                    down = true;
                }
            }
            Err(e) => {
                let e = format!("{e:#}");
                if let Some(f) = first.take() {
                    let _ = f.send(Err(e.clone()));
                }
                if !down {
                    say(&format!(
                        "cannot listen for the database's changes ({e}); retrying"
                    ));
                    down = true;
                }
            }
        }
        if bell.strong_count() == 0 {
            return;
        }
        std::thread::sleep(backoff);
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Signals the owner; false when it is gone.
fn ring(bell: &Weak<Bell>) -> bool {
    match bell.upgrade() {
        Some(b) => {
            b.ring();
            true
        }
        None => false,
    }
}

/// An eventfd: readable while rung and not yet drained.
struct Bell(OwnedFd);

impl Bell {
    fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd takes an initial value and flags; a negative return is an error.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor nobody else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes from a live u64. EAGAIN (the counter is at its maximum)
        // leaves it readable, which is all a ring means.
        unsafe {
            libc::write(self.0.as_raw_fd(), (&one as *const u64).cast(), 8);
        }
    }

    fn drain(&self) -> bool {
        let mut n: u64 = 0;
        // SAFETY: reading 8 bytes into a live u64; an eventfd read resets the counter.
        let r = unsafe { libc::read(self.0.as_raw_fd(), (&mut n as *mut u64).cast(), 8) };
        r == 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bell_is_readable_until_drained() -> Result<()> {
        let b = Bell::new()?;
        assert!(!b.drain());
        b.ring();
        b.ring();
        assert!(b.drain());
        assert!(!b.drain());
        Ok(())
    }
}
