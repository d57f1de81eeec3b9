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

pub mod cron;
