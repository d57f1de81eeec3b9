//! The scheduler on a real store and a fake clock: no sleeping.

mod common;

use chrono::Duration;
use common::{ms, store, task};
use nbexec_schedule::scheduler::{
    REASON_END, REASON_FAILURES, REASON_MAX, REASON_MISSED, REASON_OVERLAP,
};
use nbexec_schedule::{FakeClock, RunStatus, Scheduler, TaskState};

fn scheduler(at: &str) -> Scheduler<FakeClock> {
    Scheduler::new(FakeClock::at(at))
}

#[test]
fn fires_once_on_time_and_moves_its_bookmark() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    assert_eq!(t.next_fire, Some(ms("2026-11-30T10:01:00Z")));
    s.clock.set("2026-11-30T10:00:59Z".parse().unwrap());
    assert!(s.tick(&store).unwrap().is_empty());
    s.clock.set("2026-11-30T10:01:00.200Z".parse().unwrap());
    let fires = s.tick(&store).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].scheduled, ms("2026-11-30T10:01:00Z"));
    assert_eq!(fires[0].task.id, t.id);
    // The same instant again fires nothing more.
    assert!(s.tick(&store).unwrap().is_empty());
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.next_fire, Some(ms("2026-11-30T10:02:00Z")));
    assert_eq!(t.occurrences, 1);
    assert_eq!(t.last_start, Some(ms("2026-11-30T10:01:00.200Z")));
    let runs = store.runs(&t.id).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Scheduled);
    assert_eq!(runs[0].id, fires[0].run_id);
    assert_eq!(
        s.next_wake(&store).unwrap(),
        Some(ms("2026-11-30T10:02:00Z"))
    );
}

#[test]
fn a_fire_while_the_previous_run_is_live_is_skipped() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    s.clock.set("2026-11-30T10:01:00Z".parse().unwrap());
    let first = s.tick(&store).unwrap().remove(0);
    s.run_started(&store, &first.run_id, "j1").unwrap();
    s.clock.set("2026-11-30T10:02:00Z".parse().unwrap());
    assert!(s.tick(&store).unwrap().is_empty(), "overlap must not fire");
    let runs = store.runs(&t.id).unwrap();
    assert_eq!(runs[0].status, RunStatus::Skipped);
    assert_eq!(runs[0].scheduled, ms("2026-11-30T10:02:00Z"));
    assert_eq!(runs[0].message, REASON_OVERLAP);
    assert_eq!(runs[1].status, RunStatus::Executing);
    assert_eq!(runs[1].job_id.as_deref(), Some("j1"));
    // Once it ends, the next fire runs; the skipped one counted no occurrence.
    s.run_finished(&store, &first.run_id, true, "COMPLETED")
        .unwrap();
    s.clock.set("2026-11-30T10:03:00Z".parse().unwrap());
    assert_eq!(s.tick(&store).unwrap().len(), 1);
    assert_eq!(store.get_task(&t.id).unwrap().unwrap().occurrences, 2);
}

/// Fires and finishes one run at the task's next fire time.
fn fire_and_finish(
    s: &Scheduler<FakeClock>,
    store: &nbexec_schedule::ScheduleStore,
    ok: bool,
) -> bool {
    let next = store.list_tasks(None).unwrap()[0].next_fire;
    let Some(next) = next else { return false };
    s.clock
        .set(chrono::DateTime::from_timestamp_millis(next).unwrap());
    let fires = s.tick(store).unwrap();
    for f in &fires {
        s.run_started(store, &f.run_id, "j").unwrap();
        s.run_finished(
            store,
            &f.run_id,
            ok,
            if ok { "COMPLETED" } else { "FAILED" },
        )
        .unwrap();
    }
    !fires.is_empty()
}

#[test]
fn five_consecutive_failures_deactivate_the_task() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    // Four failures, a success: the streak restarts.
    for _ in 0..4 {
        assert!(fire_and_finish(&s, &store, false));
    }
    assert!(fire_and_finish(&s, &store, true));
    for i in 0..5 {
        assert_eq!(
            store.get_task(&t.id).unwrap().unwrap().state,
            TaskState::Active,
            "still active before failure {}",
            i + 1
        );
        assert!(fire_and_finish(&s, &store, false));
    }
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.state_reason, REASON_FAILURES);
    assert_eq!(t.next_fire, None);
    // Nothing fires any more, however late.
    s.clock.advance(Duration::hours(3));
    assert!(s.tick(&store).unwrap().is_empty());
    // Resumed, its old failures no longer count: one more failure does not stop it.
    let t = s.resume(&store, &t.id).unwrap();
    assert_eq!(t.state, TaskState::Active);
    assert!(fire_and_finish(&s, &store, false));
    assert_eq!(
        store.get_task(&t.id).unwrap().unwrap().state,
        TaskState::Active
    );
}

#[test]
fn skipped_runs_neither_count_nor_break_a_failure_streak() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    for _ in 0..4 {
        assert!(fire_and_finish(&s, &store, false));
    }
    // The fifth run overlaps the next fire (skipped), then fails.
    let next = store.get_task(&t.id).unwrap().unwrap().next_fire.unwrap();
    s.clock
        .set(chrono::DateTime::from_timestamp_millis(next).unwrap());
    let f = s.tick(&store).unwrap().remove(0);
    s.clock.advance(Duration::minutes(1));
    assert!(s.tick(&store).unwrap().is_empty());
    assert_eq!(store.runs(&t.id).unwrap()[0].status, RunStatus::Skipped);
    s.run_finished(&store, &f.run_id, false, "FAILED").unwrap();
    assert_eq!(
        store.get_task(&t.id).unwrap().unwrap().state,
        TaskState::Failed
    );
}

#[test]
fn end_date_completes_the_task_after_its_last_fire() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let mut t = task("*/1 * * * ?");
    t.end_date = Some(ms("2026-11-30T10:03:30Z"));
    let t = s.create(&store, t).unwrap();
    let mut fired = 0;
    while fire_and_finish(&s, &store, true) {
        fired += 1;
        assert!(fired <= 3, "fired past the end date");
    }
    assert_eq!(fired, 3);
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!(t.state_reason, REASON_END);
    assert_eq!(
        store.runs(&t.id).unwrap()[0].scheduled,
        ms("2026-11-30T10:03:00Z")
    );
}

#[test]
fn a_task_whose_end_date_passed_while_down_completes_without_firing() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let mut t = task("*/1 * * * ?");
    t.end_date = Some(ms("2026-11-30T10:03:30Z"));
    let t = s.create(&store, t).unwrap();
    s.clock.set("2026-11-30T11:00:00Z".parse().unwrap());
    assert!(s.tick(&store).unwrap().is_empty());
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.state, TaskState::Completed);
    let runs = store.runs(&t.id).unwrap();
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| r.status == RunStatus::Skipped));
}

#[test]
fn max_occurrences_completes_the_task() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let mut t = task("*/1 * * * ?");
    t.max_occurrences = Some(2);
    let t = s.create(&store, t).unwrap();
    assert!(fire_and_finish(&s, &store, true));
    assert!(fire_and_finish(&s, &store, true));
    assert!(!fire_and_finish(&s, &store, true));
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!((t.state, t.occurrences), (TaskState::Completed, 2));
    assert_eq!(t.state_reason, REASON_MAX);
}

#[test]
fn start_date_delays_the_first_fire() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let mut t = task("0 6 ? * 2-6");
    t.start_date = Some(ms("2026-12-03T06:00:00Z"));
    let t = s.create(&store, t).unwrap();
    // A fire exactly at the start date counts.
    assert_eq!(t.next_fire, Some(ms("2026-12-03T06:00:00Z")));
}

#[test]
fn fires_missed_while_the_server_was_down_are_skipped_not_replayed() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    assert!(fire_and_finish(&s, &store, true));
    // Down from 10:01 to 12:00:10: 119 fires (10:02 … 12:00) fall due.
    s.clock.set("2026-11-30T12:00:10Z".parse().unwrap());
    let fires = s.tick(&store).unwrap();
    assert_eq!(fires.len(), 1, "no burst: one run at most");
    assert_eq!(fires[0].scheduled, ms("2026-11-30T12:00:00Z"));
    let runs = store.runs(&t.id).unwrap();
    let skipped: Vec<_> = runs
        .iter()
        .filter(|r| r.status == RunStatus::Skipped)
        .collect();
    // The newest 30 missed fires are recorded one by one; the oldest of them says
    // how many more there were (118 missed in all).
    assert_eq!(skipped.len(), 30);
    assert!(skipped.iter().all(|r| r.message.starts_with(REASON_MISSED)));
    assert_eq!(skipped[0].scheduled, ms("2026-11-30T11:59:00Z"));
    assert_eq!(skipped[29].scheduled, ms("2026-11-30T11:30:00Z"));
    assert!(
        skipped[29].message.contains("(88 earlier missed fires"),
        "{}",
        skipped[29].message
    );
    // The store keeps 30 finished runs: the 10:01 success made room.
    assert_eq!(runs.len(), 31);
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.next_fire, Some(ms("2026-11-30T12:01:00Z")));
    assert_eq!(t.occurrences, 2);
    // Down again for a few minutes: the fire seen within the grace period runs, the
    // ones before it are skipped.
    s.run_finished(&store, &fires[0].run_id, true, "COMPLETED")
        .unwrap();
    s.clock.set("2026-11-30T12:03:30Z".parse().unwrap());
    let fires = s.tick(&store).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].scheduled, ms("2026-11-30T12:03:00Z"));
    let runs = store.runs(&t.id).unwrap();
    assert_eq!(
        runs.iter()
            .take(4)
            .map(|r| (r.status, r.scheduled))
            .collect::<Vec<_>>(),
        vec![
            (RunStatus::Scheduled, ms("2026-11-30T12:03:00Z")),
            (RunStatus::Skipped, ms("2026-11-30T12:02:00Z")),
            (RunStatus::Skipped, ms("2026-11-30T12:01:00Z")),
            (RunStatus::Succeeded, ms("2026-11-30T12:00:00Z")),
        ]
    );
}

#[test]
fn a_fire_seen_after_the_grace_period_is_skipped() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("0 * * * ?")).unwrap();
    // The 11:00 fire is seen at 11:01:01 (down at 11:00, back a minute later).
    s.clock.set("2026-11-30T11:01:01Z".parse().unwrap());
    assert!(s.tick(&store).unwrap().is_empty());
    let runs = store.runs(&t.id).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Skipped);
    assert_eq!(runs[0].scheduled, ms("2026-11-30T11:00:00Z"));
    assert_eq!(
        store.get_task(&t.id).unwrap().unwrap().next_fire,
        Some(ms("2026-11-30T12:00:00Z"))
    );
}

#[test]
fn a_very_long_outage_is_bounded() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    // A year of every-minute fires.
    s.clock.set("2027-11-30T10:00:20Z".parse().unwrap());
    let fires = s.tick(&store).unwrap();
    assert_eq!(fires.len(), 1);
    assert_eq!(fires[0].scheduled, ms("2027-11-30T10:00:00Z"));
    let runs = store.runs(&t.id).unwrap();
    assert!(runs.len() <= 31);
    let oldest = runs.last().unwrap();
    assert!(
        oldest.message.contains("(at least ")
            && oldest
                .message
                .contains(" earlier missed fires not recorded"),
        "{}",
        oldest.message
    );
}

#[test]
fn paused_tasks_fire_nothing_and_resume_from_now() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    s.pause(&store, &t.id, TaskState::Paused).unwrap();
    s.clock.set("2026-11-30T10:30:00Z".parse().unwrap());
    assert!(s.tick(&store).unwrap().is_empty());
    let t = s.resume(&store, &t.id).unwrap();
    assert_eq!(t.next_fire, Some(ms("2026-11-30T10:31:00Z")));
    assert!(
        store.runs(&t.id).unwrap().is_empty(),
        "paused fires are not recorded"
    );
}

#[test]
fn dst_spring_forward_fires_once_in_berlin() {
    let (_d, store) = store();
    let s = scheduler("2026-03-28T12:00:00Z");
    let mut t = task("30 2 * * ?");
    t.time_zone = "Europe/Berlin".into();
    let t = s.create(&store, t).unwrap();
    // 02:30 does not exist on 2026-03-29 in Berlin: the run is at 03:00 CEST.
    assert_eq!(t.next_fire, Some(ms("2026-03-29T01:00:00Z")));
    assert!(fire_and_finish(&s, &store, true));
    let t = store.get_task(&t.id).unwrap().unwrap();
    assert_eq!(t.next_fire, Some(ms("2026-03-30T00:30:00Z")));
}

#[test]
fn cancelled_runs_do_not_count_as_failures() {
    let (_d, store) = store();
    let s = scheduler("2026-11-30T10:00:30Z");
    let t = s.create(&store, task("*/1 * * * ?")).unwrap();
    for _ in 0..4 {
        assert!(fire_and_finish(&s, &store, false));
    }
    // Two runs cancelled, then a fifth failure: that is five failures in all.
    for _ in 0..2 {
        let next = store.get_task(&t.id).unwrap().unwrap().next_fire.unwrap();
        s.clock
            .set(chrono::DateTime::from_timestamp_millis(next).unwrap());
        let f = s.tick(&store).unwrap().remove(0);
        s.run_finished(
            &store,
            &f.run_id,
            false,
            nbexec_schedule::scheduler::CANCELLED,
        )
        .unwrap();
        assert_eq!(
            store.get_task(&t.id).unwrap().unwrap().state,
            TaskState::Active
        );
    }
    assert!(fire_and_finish(&s, &store, false));
    assert_eq!(
        store.get_task(&t.id).unwrap().unwrap().state,
        TaskState::Failed
    );
}
