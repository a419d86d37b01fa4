//! The Admin service: how the messenger backend changes the registry.
//!
//! - `service`: the gRPC handlers (parsing, answers, statuses).
//! - `import`: an `Import` call's counts and its one log line.
//! - `writes`: each change to the registry and the serving table, in order.

mod import;
mod service;
mod writes;

pub(crate) use service::AdminService;
