//! Jobs: the queue, the worker pool, the warm kernels.

/// The server's jobs in flight.
#[derive(Default)]
pub(crate) struct Queue {}
