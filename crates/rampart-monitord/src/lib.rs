//! rampart-monitord: per-tenant network and process monitoring with eBPF.

pub mod bpf;
pub mod cgroups;
mod error;
pub mod events;
pub mod wire;

pub use error::Error;
