//! Scheduled notebook tasks and webhooks, without HTTP routing.
//!
//! * [`cron`]: ArcGIS Quartz fields and POSIX cron strings in a time zone.
//! * [`clock`]: the time source, injected so schedules are tested without sleeping.
//! * [`task`], [`store`]: tasks (ArcGIS field names) and their runs, in SQLite in the
//!   state directory beside the job registry.
//! * [`scheduler`]: the pure decisions: which task fires now, which fire is recorded
//!   skipped, which task ends.
//! * [`webhook`]: webhook receivers, signature checks, replay detection.
//! * [`notify`]: outbound, signed notifications of a finished job.

pub mod clock;
pub mod cron;
pub mod notify;
pub mod scheduler;
pub mod store;
pub mod task;
pub mod webhook;

pub use clock::{Clock, FakeClock, SystemClock};
pub use cron::{CronError, CronFields, Dialect, Schedule};
pub use scheduler::{Fire, Plan, Scheduler};
pub use store::{ScheduleStore, StoreError};
pub use task::{RunStatus, Task, TaskRun, TaskState};
pub use webhook::Receiver;
