//! What a user of a node holds and sees: the node's configuration and handle, the
//! `Client` that sends it bounded commands, one job run to its report (`submit`), and the
//! display types: peer rows, progress, events, a job's report.

pub(crate) mod client;
pub(crate) mod config;
pub(crate) mod handle;
pub(crate) mod report;
pub(crate) mod submit;
pub(crate) mod view;
