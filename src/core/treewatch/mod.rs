//! The Bash ledger in constant time: the session's server watches its checkout and keeps
//! the picture `git status` would give; hooks ask it over a Unix socket what a command
//! changed instead of running `git status` twice.
//!
//! - [`tree`]: one watched checkout — inotify, the picture, the change log, windows.
//! - [`index`]: the git index read natively (is a path tracked; did its file change).
//! - [`server`]: the thread `serve` runs: poll loop over the watches and the socket.
//! - [`client`]: what hooks, `status` and `doctor` call; `None` means "use git status".
//!
//! Why a socket rather than the store: the server reads its inotify queue *after* a
//! request arrives, and the kernel queued every event of a write that finished before the
//! hook asked — so the answer covers everything the command did, with no polling and no
//! per-event database write. A hook pays one connect and one line each way.

pub mod client;
pub mod index;
pub mod server;
pub mod tree;

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use tree::Window;

/// The directory under the state dir that holds the servers' sockets (0700).
pub const SOCKET_DIR: &str = "ledger";

/// One request: `begin` / `end` a command's window, the `dirty` paths now, or `info`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Request {
    pub op: String,
    #[serde(default)]
    pub root: String,
    #[serde(default)]
    pub key: String,
    /// `begin`: also return the paths with uncommitted changes.
    #[serde(default)]
    pub dirty: bool,
}

/// A watched checkout, as `doctor` shows it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TreeInfo {
    pub root: String,
    pub covered: bool,
    pub why: Option<String>,
    pub dirs: usize,
    pub entries: usize,
    pub answered: u64,
    #[serde(default)]
    pub full_runs: u64,
    #[serde(default)]
    pub path_runs: u64,
}

/// The answer to a [`Request`]. `ok: false` always carries `why`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default)]
    pub why: Option<String>,
    #[serde(default)]
    pub git: bool,
    #[serde(default)]
    pub head: Option<String>,
    #[serde(default)]
    pub dirty: Option<Vec<String>>,
    #[serde(default)]
    pub window: Option<Window>,
    #[serde(default)]
    pub trees: Vec<TreeInfo>,
    #[serde(default)]
    pub pid: u32,
}

impl Reply {
    fn no(why: impl Into<String>) -> Self {
        Self {
            why: Some(why.into()),
            ..Self::default()
        }
    }
}

/// The socket of the server running under agent process `pid` (started at `ticks`).
pub fn socket_path(state_dir: &Path, pid: i32, ticks: u64) -> PathBuf {
    state_dir
        .join(SOCKET_DIR)
        .join(format!("{pid}-{ticks}.sock"))
}

/// Runs `f` with a path to `path` short enough for a socket address (108 bytes): the path
/// itself, or `/proc/self/fd/<dir>/<name>` through a descriptor of its directory.
fn with_short_path<T>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    if path.as_os_str().len() < 100 {
        return f(path);
    }
    use std::os::unix::fs::OpenOptionsExt;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return f(path);
    };
    let d = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir)?;
    use std::os::fd::AsRawFd;
    let short = PathBuf::from(format!("/proc/self/fd/{}", d.as_raw_fd())).join(name);
    f(&short)
}

/// The uid at the other end of a Unix socket.
fn peer_uid(fd: i32) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: valid socket fd, a ucred-sized buffer and its length.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

fn my_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
