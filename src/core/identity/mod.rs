//! Who a session is: validated ids, process facts, anchors, the harness's own session
//! file, and the resolver that ranks them as evidence.

pub mod anchor;
pub mod cli;
pub mod harness;
pub mod process;
pub mod profile;
pub mod resolver;
pub mod session_id;
pub mod trust;

pub use cli::AgentCli;
pub use process::{AgentProcess, Probe, ProcInfo, SystemProbe};
pub use resolver::{Evidence, Resolved};
pub use session_id::SessionId;
