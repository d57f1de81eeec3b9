//! The scheduler's decisions: given a task, whether its previous run is still live,
//! its failure streak and the time, which fire runs now, which fires are recorded
//! skipped, and whether the task ends. [`plan`] is pure; [`Scheduler`] applies plans
//! to the store with an injected [`Clock`].
//!
//! Rules:
//! * A fire runs when the scheduler sees it within [`ON_TIME_GRACE`] of its time.
//!   Fires older than that (the server was not running) are recorded `skipped`,
//!   never replayed: at most one run starts per task per tick.
//! * A fire whose task still has a run scheduled or executing is recorded `skipped`.
//! * `maxOccurrences` counts runs started (skipped fires do not count); the task is
//!   `completed` when the last one starts, or when the next fire is past `endDate`.
//! * Five consecutive failed runs (skipped and cancelled ones neither count nor break
//!   the streak) deactivate the task: state `failed`.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::cron::Schedule;
use crate::store::{ScheduleStore, StoreError};
use crate::task::{RunStatus, Task, TaskState};

/// Consecutive failed runs that deactivate a task (ArcGIS's rule).
pub const MAX_CONSECUTIVE_FAILURES: u32 = 5;

/// How late a fire may be seen and still run.
pub const ON_TIME_GRACE: Duration = Duration::from_secs(60);

/// How many missed fires of one gap are recorded one by one (the newest ones).
pub const MAX_MISSED_RECORDED: usize = 30;

/// How many fire times one plan walks through before jumping to the present.
const MAX_WALK: usize = 10_000;

/// The message of a run whose job was cancelled (recorded `failed`, but not
/// counted toward the five failures).
pub const CANCELLED: &str = "CANCELLED";

pub const REASON_OVERLAP: &str = "skipped: the previous run was still executing";
pub const REASON_MISSED: &str = "skipped: missed while nbexec serve was not running";
pub const REASON_FAILURES: &str = "deactivated after five consecutive failed runs";
pub const REASON_MAX: &str = "completed: maxOccurrences reached";
pub const REASON_END: &str = "completed: endDate passed";

/// What to do for one task now.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Fire times to record as skipped, with why, oldest first.
    pub skipped: Vec<(i64, String)>,
    /// The fire time of the run to start now.
    pub fire: Option<i64>,
    /// The new bookmark: the next fire time not yet handled.
    pub next_fire: Option<i64>,
    /// The task leaves the active state.
    pub end: Option<(TaskState, String)>,
}

/// The first fire of `task` after `after`, within its start and end dates.
pub fn first_fire(task: &Task, schedule: &Schedule, after: DateTime<Utc>) -> Option<i64> {
    let mut from = after;
    if let Some(start) = task.start_date.and_then(DateTime::from_timestamp_millis) {
        // A fire exactly at startDate counts.
        let just_before = start - chrono::Duration::milliseconds(1);
        if just_before > from {
            from = just_before;
        }
    }
    let t = schedule.next_after(from)?.timestamp_millis();
    match task.end_date {
        Some(end) if t > end => None,
        _ => Some(t),
    }
}

/// Decides what `task` does at `now`.
pub fn plan(
    task: &Task,
    schedule: &Schedule,
    live: bool,
    consecutive_failures: u32,
    now: DateTime<Utc>,
) -> Plan {
    let mut plan = Plan {
        next_fire: task.next_fire,
        ..Plan::default()
    };
    if task.state != TaskState::Active {
        return plan;
    }
    if consecutive_failures >= MAX_CONSECUTIVE_FAILURES {
        plan.end = Some((TaskState::Failed, REASON_FAILURES.into()));
        plan.next_fire = None;
        return plan;
    }
    let now_ms = now.timestamp_millis();
    let Some(mut next) = task.next_fire.or_else(|| first_fire(task, schedule, now)) else {
        plan.end = Some((TaskState::Completed, REASON_END.into()));
        return plan;
    };
    let within_end = |t: i64| task.end_date.is_none_or(|end| t <= end);
    // Walk the fires that are due, keeping the newest few.
    let mut due: VecDeque<i64> = VecDeque::new();
    let mut missed_total: usize = 0;
    let mut walked = 0;
    let mut jumped = false;
    let mut next_opt = Some(next);
    while let Some(f) = next_opt {
        if f > now_ms || !within_end(f) {
            break;
        }
        missed_total += 1;
        due.push_back(f);
        if due.len() > MAX_MISSED_RECORDED + 1 {
            due.pop_front();
        }
        walked += 1;
        let from = if walked >= MAX_WALK {
            // A very long gap: jump to the last grace window.
            walked = 0;
            jumped = true;
            let jump = now - chrono::Duration::from_std(ON_TIME_GRACE).unwrap_or_default();
            let at = DateTime::from_timestamp_millis(f).unwrap_or(now);
            if jump > at { jump } else { at }
        } else {
            DateTime::from_timestamp_millis(f).unwrap_or(now)
        };
        next_opt = schedule.next_after(from).map(|t| t.timestamp_millis());
    }
    // The newest due fire runs if it is on time; the rest were missed.
    let grace = ON_TIME_GRACE.as_millis() as i64;
    let current = match due.back() {
        Some(&last) if now_ms - last <= grace => {
            due.pop_back();
            missed_total -= 1;
            Some(last)
        }
        _ => None,
    };
    let unrecorded = missed_total - due.len();
    for (i, f) in due.iter().enumerate() {
        let mut reason = REASON_MISSED.to_owned();
        if i == 0 && (unrecorded > 0 || jumped) {
            let at_least = if jumped { "at least " } else { "" };
            reason.push_str(&format!(
                " ({at_least}{unrecorded} earlier missed fires not recorded one by one)"
            ));
        }
        plan.skipped.push((*f, reason));
    }
    if let Some(c) = current {
        let max_reached = task.max_occurrences.is_some_and(|m| task.occurrences >= m);
        if max_reached {
            plan.end = Some((TaskState::Completed, REASON_MAX.into()));
        } else if live {
            plan.skipped.push((c, REASON_OVERLAP.into()));
        } else {
            plan.fire = Some(c);
            if task
                .max_occurrences
                .is_some_and(|m| task.occurrences + 1 >= m)
            {
                plan.end = Some((TaskState::Completed, REASON_MAX.into()));
            }
        }
    }
    next = match next_opt {
        Some(f) if within_end(f) => f,
        _ => {
            plan.next_fire = None;
            if plan.end.is_none() {
                plan.end = Some((TaskState::Completed, REASON_END.into()));
            }
            return plan;
        }
    };
    plan.next_fire = if plan.end.is_some() { None } else { Some(next) };
    plan
}

/// A run the scheduler started: the caller creates its job (with `inputs.taskId`
/// and `inputs.runId`) and reports back with [`Scheduler::run_started`] and
/// [`Scheduler::run_finished`].
#[derive(Debug, Clone, PartialEq)]
pub struct Fire {
    pub task: Task,
    pub run_id: String,
    /// The fire time (epoch ms).
    pub scheduled: i64,
}

/// Applies plans to the store, on a clock.
pub struct Scheduler<C: Clock> {
    pub clock: C,
}

impl<C: Clock> Scheduler<C> {
    pub fn new(clock: C) -> Scheduler<C> {
        Scheduler { clock }
    }

    /// Stores a new task, active, its first fire worked out from now.
    pub fn create(&self, store: &ScheduleStore, mut task: Task) -> Result<Task, StoreError> {
        let now = self.clock.now();
        task.created = now.timestamp_millis();
        task.updated = task.created;
        task.state = TaskState::Active;
        task.next_fire = task
            .schedule()
            .ok()
            .and_then(|s| first_fire(&task, &s, now));
        store.insert_task(&task)?;
        Ok(task)
    }

    /// Pauses a task (or disables it): it fires nothing until resumed.
    pub fn pause(
        &self,
        store: &ScheduleStore,
        id: &str,
        state: TaskState,
    ) -> Result<Task, StoreError> {
        let mut task = store
            .get_task(id)?
            .ok_or_else(|| StoreError::NoTask(id.into()))?;
        task.state = state;
        task.state_reason = String::new();
        task.next_fire = None;
        store.update_task(&task)?;
        Ok(task)
    }

    /// Makes a task active again: its next fire is worked out from now (fires while
    /// it was paused are not recorded), and earlier failures no longer count.
    pub fn resume(&self, store: &ScheduleStore, id: &str) -> Result<Task, StoreError> {
        let mut task = store
            .get_task(id)?
            .ok_or_else(|| StoreError::NoTask(id.into()))?;
        let now = self.clock.now();
        task.state = TaskState::Active;
        task.state_reason = String::new();
        if task.max_occurrences.is_some_and(|m| task.occurrences >= m) {
            // A completed task starts counting again.
            task.occurrences = 0;
        }
        task.failures_since = now.timestamp_millis();
        task.next_fire = task
            .schedule()
            .ok()
            .and_then(|s| first_fire(&task, &s, now));
        store.update_task(&task)?;
        Ok(task)
    }

    /// Decides and records every active task's fires at the clock's now; returns
    /// the runs to start.
    pub fn tick(&self, store: &ScheduleStore) -> Result<Vec<Fire>, StoreError> {
        let now = self.clock.now();
        let mut fires = Vec::new();
        for task in store.list_tasks(None)? {
            if task.state != TaskState::Active {
                continue;
            }
            let fire = store.transaction(|store| {
                // Re-read inside the transaction: the command line may have changed it.
                let Some(mut task) = store.get_task(&task.id)? else {
                    return Ok(None);
                };
                if task.state != TaskState::Active {
                    return Ok(None);
                }
                let schedule = match task.schedule() {
                    Ok(s) => s,
                    Err(e) => {
                        task.state = TaskState::Disabled;
                        task.state_reason = format!("disabled: {e}");
                        task.next_fire = None;
                        store.update_task(&task)?;
                        return Ok(None);
                    }
                };
                let live = store.has_live_run(&task.id)?;
                let failures = store.consecutive_failures(&task.id, task.failures_since)?;
                let p = plan(&task, &schedule, live, failures, now);
                self.apply(store, task, p)
            })?;
            fires.extend(fire);
        }
        Ok(fires)
    }

    fn apply(
        &self,
        store: &ScheduleStore,
        mut task: Task,
        p: Plan,
    ) -> Result<Option<Fire>, StoreError> {
        for (at, reason) in &p.skipped {
            store.add_run(&task.id, RunStatus::Skipped, *at, reason)?;
        }
        let mut fire = None;
        if let Some(at) = p.fire {
            let run_id = store.add_run(&task.id, RunStatus::Scheduled, at, "")?;
            task.occurrences += 1;
            task.last_start = Some(self.clock.now_ms());
            fire = Some((run_id, at));
        }
        let changed = p.next_fire != task.next_fire || p.end.is_some() || fire.is_some();
        task.next_fire = p.next_fire;
        if let Some((state, reason)) = p.end {
            task.state = state;
            task.state_reason = reason;
        }
        if changed {
            store.update_task(&task)?;
        }
        Ok(fire.map(|(run_id, scheduled)| Fire {
            task,
            run_id,
            scheduled,
        }))
    }

    /// The earliest next fire of the active tasks (when the serve loop should wake).
    pub fn next_wake(&self, store: &ScheduleStore) -> Result<Option<i64>, StoreError> {
        Ok(store
            .list_tasks(None)?
            .iter()
            .filter(|t| t.state == TaskState::Active)
            .filter_map(|t| t.next_fire)
            .min())
    }

    /// The run's job exists and executes.
    pub fn run_started(
        &self,
        store: &ScheduleStore,
        run_id: &str,
        job_id: &str,
    ) -> Result<(), StoreError> {
        store.set_run(run_id, RunStatus::Executing, Some(job_id), None)
    }

    /// The run ended; a fifth consecutive failure deactivates its task.
    pub fn run_finished(
        &self,
        store: &ScheduleStore,
        run_id: &str,
        succeeded: bool,
        message: &str,
    ) -> Result<(), StoreError> {
        let status = if succeeded {
            RunStatus::Succeeded
        } else {
            RunStatus::Failed
        };
        store.transaction(|store| {
            store.set_run(run_id, status, None, Some(message))?;
            let Some(run) = store.get_run(run_id)? else {
                return Ok(());
            };
            let Some(mut task) = store.get_task(&run.task_id)? else {
                return Ok(());
            };
            if task.state == TaskState::Active
                && store.consecutive_failures(&task.id, task.failures_since)?
                    >= MAX_CONSECUTIVE_FAILURES
            {
                task.state = TaskState::Failed;
                task.state_reason = REASON_FAILURES.into();
                task.next_fire = None;
                store.update_task(&task)?;
            }
            Ok(())
        })
    }
}
