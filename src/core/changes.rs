//! What wakes the store's watchers — `serve`'s push and doorbell, `watch`, the waiter —
//! when the store changes, instead of polling it:
//!
//! - SQLite: inotify on the database's directory (every write touches it);
//! - PostgreSQL: `LISTEN` on the project's channel, which every write a watcher cares
//!   about `NOTIFY`s ([`crate::core::store::db::Conn::notify`]). No shared filesystem
//!   needed: a waiter or server on any host hears a send from any other.
//!
//! Both show as one readable descriptor, so a caller polls it beside others (the waiter's
//! pidfd) or registers it with tokio. The PostgreSQL side listens on a connection of its
//! own, driven by its own thread, so waiting never holds the store a caller's other work
//! uses; that thread reconnects with backoff when the connection breaks (a server
//! restart) and then reports a change, since notifications sent meanwhile are lost.

mod listener;

use crate::core::fswatch::DirWatch;
use crate::core::paths::ProjectPaths;
use crate::core::store::db::pg::Target;
use crate::core::store::Store;
use anyhow::{Context, Result};
use listener::Listener;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// A source of "something changed" signals.
pub struct Changes {
    source: Source,
}

enum Source {
    Dir(DirWatch),
    Listen(Listener),
}

impl Changes {
    /// Watches `store`'s engine: its PostgreSQL channel, else the SQLite directory. On
    /// PostgreSQL, what changes after this returns is heard, except while the listening
    /// connection is down (see [`Changes::unheard`]); it reports a change once it is back.
    /// `log` hears the listener's troubles (`serve` logs them; a waiter, whose stderr is
    /// its wake message, passes none).
    pub fn open(paths: &ProjectPaths, store: &Store, log: Option<fn(&str)>) -> Result<Self> {
        Self::open_for(paths, store.pg().map(|c| c.target()), log)
    }

    /// [`Changes::open`] for the PostgreSQL `target` (else the SQLite directory), for a
    /// caller that must not hold its store while connecting.
    pub fn open_for(
        paths: &ProjectPaths,
        target: Option<&Target>,
        log: Option<fn(&str)>,
    ) -> Result<Self> {
        let source = match target {
            Some(t) => Source::Listen(Listener::start(t.clone(), log)?),
            None => Source::Dir(
                DirWatch::new(&paths.db_dir())
                    .with_context(|| format!("cannot watch {}", paths.db_dir().display()))?,
            ),
        };
        Ok(Self { source })
    }

    /// Why changes are not heard yet: the listening connection failed at start (it keeps
    /// retrying, and reports a change once connected).
    pub fn unheard(&self) -> Option<&str> {
        match &self.source {
            Source::Dir(_) => None,
            Source::Listen(l) => l.first_error(),
        }
    }

    /// Discards pending signals; returns whether there were any.
    pub fn drain(&self) -> bool {
        match &self.source {
            Source::Dir(w) => w.drain(),
            Source::Listen(l) => l.drain(),
        }
    }

    /// Blocks until a change or `timeout`; true when something changed (and drained).
    pub fn wait(&self, timeout: Duration) -> bool {
        let mut pfd = libc::pollfd {
            fd: self.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms) };
        r > 0 && self.drain()
    }
}

/// Readable when something changed; [`Changes::drain`] resets it.
impl AsRawFd for Changes {
    fn as_raw_fd(&self) -> RawFd {
        match &self.source {
            Source::Dir(w) => w.raw_fd(),
            Source::Listen(l) => l.as_raw_fd(),
        }
    }
}
