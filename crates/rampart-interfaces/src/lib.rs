//! The contract between Rampart daemons and their callers: one module per D-Bus interface, named after it, holding
//! the well-known names, the wire types and the generated client proxy. A daemon implements the interface with
//! `#[zbus::interface]` over the same types, so the two sides cannot drift apart silently.
//!
//! Errors cross the bus as named D-Bus errors under `org.rampart.Error.*` (see [`error`]), never as free text in a
//! success reply.

pub mod audit;
pub mod authlog;
pub mod error;
pub mod firewall;
pub mod identity;
pub mod monitor;
pub mod ssh;
pub mod tenant;
pub mod update;
pub mod user_name;

pub use error::Error;
