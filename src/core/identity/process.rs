//! Process facts from `/proc`: parent, name, start time, liveness, and the agent process.
//!
//! A pid alone is not an identity (pids are reused); a pid plus its start time (field 22 of
//! `/proc/<pid>/stat`, clock ticks since boot) is.

use super::cli::{self, AgentCli};
use std::fs;
use std::sync::OnceLock;

/// One process's facts as read from `/proc/<pid>/stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStat {
    pub pid: i32,
    pub comm: String,
    pub state: char,
    pub ppid: i32,
    pub start_ticks: u64,
}

/// Start facts a liveness probe reports for a live process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcInfo {
    pub start_ticks: u64,
    /// Wall-clock start, epoch ms (accurate to about a second: boot time has 1 s resolution).
    pub start_unix_ms: i64,
}

/// The liveness question, injectable so hygiene and the scenario tests can simulate pid reuse.
pub trait Probe {
    /// Facts of `pid` if it is running (zombies count as gone), else `None`.
    fn process(&self, pid: i32) -> Option<ProcInfo>;

    /// Alive *and* the same process that was recorded.
    fn is_alive(&self, pid: i32, start_ticks: u64) -> bool {
        self.process(pid)
            .is_some_and(|p| p.start_ticks == start_ticks)
    }
}

/// The real probe: reads `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemProbe;

impl Probe for SystemProbe {
    fn process(&self, pid: i32) -> Option<ProcInfo> {
        let st = stat(pid)?;
        if st.state == 'Z' || st.state == 'X' {
            return None;
        }
        Some(ProcInfo {
            start_ticks: st.start_ticks,
            start_unix_ms: start_unix_ms(st.start_ticks),
        })
    }
}

/// Reads and parses `/proc/<pid>/stat`; `None` when the process does not exist.
pub fn stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    // One read into a stack buffer: `read_to_string` would stat the file and grow its
    // buffer over half a dozen reads, and the roster does this for every live sibling on
    // every turn. A stat line is under 1 KiB unless comm is pathological (then: None).
    use std::io::Read;
    let mut f = fs::File::open(format!("/proc/{pid}/stat")).ok()?;
    let mut buf = [0u8; 1024];
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => {
                n += k;
                // The kernel hands the whole line in one read; its newline ends it.
                if buf[n - 1] == b'\n' {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    parse_stat(pid, std::str::from_utf8(&buf[..n]).ok()?)
}

/// Parses stat text; `comm` may hold spaces and parentheses, so split at the last `)`.
pub fn parse_stat(pid: i32, text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let mut rest = text.get(close + 1..)?.split_ascii_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    // After state and ppid, field 22 (starttime) is the 18th remaining field.
    let start_ticks = rest.nth(17)?.parse().ok()?;
    Some(ProcStat {
        pid,
        comm,
        state,
        ppid,
        start_ticks,
    })
}

fn clock_ticks() -> i64 {
    static TICKS: OnceLock<i64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it returns -1 on error, handled below.
        let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if t > 0 {
            t as i64
        } else {
            100
        }
    })
}

fn boot_time_ms() -> i64 {
    static BTIME: OnceLock<i64> = OnceLock::new();
    *BTIME.get_or_init(|| {
        fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime "))
                    .and_then(|v| v.trim().parse::<i64>().ok())
            })
            .map(|s| s * 1000)
            .unwrap_or(0)
    })
}

/// Wall-clock start of a process from its start ticks.
pub fn start_unix_ms(start_ticks: u64) -> i64 {
    boot_time_ms() + (start_ticks as i64) * 1000 / clock_ticks()
}

/// This machine's identity for ownership: host name and boot id (pids restart at boot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostId {
    pub host: String,
    pub boot_id: String,
}

/// Reads the host name and boot id once per process.
pub fn host_id() -> &'static HostId {
    static HOST: OnceLock<HostId> = OnceLock::new();
    HOST.get_or_init(|| {
        let read = |p: &str| {
            fs::read_to_string(p)
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let mut boot_id = read("/proc/sys/kernel/random/boot_id");
        // A container has its own process table on a shared kernel (same boot id, maybe
        // the same host name): its pids mean nothing to the host or other containers.
        // Outside the initial pid namespace the namespace joins the boot id, so rows of
        // another container are never probed by pid here (they are judged by heartbeat).
        if let Some(ns) = pid_namespace().filter(|ns| *ns != INIT_PID_NS) {
            boot_id.push_str(&format!(":pidns-{ns}"));
        }
        HostId {
            host: read("/proc/sys/kernel/hostname"),
            boot_id,
        }
    })
}

/// The initial pid namespace's inode (the kernel's `PROC_PID_INIT_INO`).
const INIT_PID_NS: u64 = 0xEFFF_FFFC;

/// This process's pid namespace inode (`/proc/self/ns/pid` reads `pid:[4026531836]`).
fn pid_namespace() -> Option<u64> {
    let link = fs::read_link("/proc/self/ns/pid").ok()?;
    let text = link.to_str()?;
    text.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
}

/// The agent process a hook or server belongs to (a `claude`, `codex` or Gemini CLI
/// process): pid plus start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AgentProcess {
    pub pid: i32,
    pub start_ticks: u64,
}

/// Names an agent process goes by on its own (`node` needs its command line: see
/// [`cli::of_process`]).
pub fn is_agent_name(comm: &str) -> bool {
    cli::by_name(comm).is_some()
}

/// Longest ancestor chain walked before giving up (guards against cycles and deep trees).
pub const MAX_ANCESTOR_DEPTH: usize = 64;

/// First ancestor of `from` (excluding `from` itself) that is an agent process.
pub fn find_agent_ancestor(from: i32) -> Option<AgentProcess> {
    find_agent_ancestor_cli(from).map(|(a, _)| a)
}

/// [`find_agent_ancestor`], with which CLI it is.
pub fn find_agent_ancestor_cli(from: i32) -> Option<(AgentProcess, AgentCli)> {
    let mut pid = stat(from)?.ppid;
    for _ in 0..MAX_ANCESTOR_DEPTH {
        if pid <= 1 {
            return None;
        }
        let st = stat(pid)?;
        if let Some(c) = cli::of_process(pid, &st.comm) {
            return Some((
                AgentProcess {
                    pid,
                    start_ticks: st.start_ticks,
                },
                c,
            ));
        }
        pid = st.ppid;
    }
    None
}

/// Which CLI `agent` runs, if it is still that process and recognisable.
pub fn cli_of(agent: AgentProcess) -> Option<AgentCli> {
    let st = stat(agent.pid).filter(|s| s.start_ticks == agent.start_ticks)?;
    cli::of_process(agent.pid, &st.comm)
}

/// The agent process of this process: the nearest agent ancestor. `CLAUDE_PID` is only
/// an environment variable — a command in one session's Bash could set it to a sibling's
/// pid — so it is believed when it names that same ancestor, or when no agent process is
/// above us at all (a person's shell, which may act for any session anyway).
pub fn agent_process() -> Option<AgentProcess> {
    agent_process_cli().map(|(a, _)| a)
}

/// [`agent_process`] with its CLI. A process `CLAUDE_PID` names counts as Claude Code
/// unless it is recognisably another CLI.
pub fn agent_process_cli() -> Option<(AgentProcess, AgentCli)> {
    let walked = find_agent_ancestor_cli(std::process::id() as i32);
    let named = std::env::var("CLAUDE_PID")
        .ok()
        .and_then(|v| v.trim().parse::<i32>().ok())
        .filter(|p| *p > 0)
        .and_then(|pid| {
            let st = stat(pid).filter(|s| s.state != 'Z' && s.state != 'X')?;
            let c = cli::of_process(pid, &st.comm).unwrap_or(AgentCli::Claude);
            Some((
                AgentProcess {
                    pid,
                    start_ticks: st.start_ticks,
                },
                c,
            ))
        });
    match (named, walked) {
        (Some(n), None) => Some(n),
        _ => walked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let line = "4242 (we ird) (x)) S 17 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let st = parse_stat(4242, line).expect("parses");
        assert_eq!(st.comm, "we ird) (x)");
        assert_eq!(st.state, 'S');
        assert_eq!(st.ppid, 17);
        assert_eq!(st.start_ticks, 987_654);
    }

    #[test]
    fn own_process_is_alive_with_its_start_time() {
        let me = std::process::id() as i32;
        let st = stat(me).expect("self stat");
        assert!(SystemProbe.is_alive(me, st.start_ticks));
        assert!(!SystemProbe.is_alive(me, st.start_ticks + 1));
        assert!(!SystemProbe.is_alive(0, 0));
        assert!(!SystemProbe.is_alive(-3, 0));
        let start = start_unix_ms(st.start_ticks);
        assert!(start <= crate::core::clock::now_ms() + 1000);
    }
}
