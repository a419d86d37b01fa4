//! The Admin service: how the messenger backend changes the registry.
//!
//! - `service`: the gRPC handlers (parsing, answers, statuses).
//! - `writes`: each change to the registry and the serving table, in order.

mod service;
mod writes;

pub(crate) use service::AdminService;
