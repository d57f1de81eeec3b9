//! The schedule store: receivers, deliveries, task ids, privacy.

mod common;

use std::time::Duration;

use common::{store, task};
use nbexec_schedule::{Receiver, StoreError};
use serde_json::json;

fn receiver(id: &str) -> Receiver {
    Receiver {
        id: id.into(),
        name: "r".into(),
        item_id: "item".into(),
        secret: "0123456789abcdef0123456789abcdef".into(),
        signature_headers: vec!["x-esrihook-signature".into(), "x-hub-signature-256".into()],
        api_token: String::new(),
        parameters: json!({"num": 1}),
        disabled: false,
        username: "alice".into(),
        created: 1,
        message: String::new(),
    }
}

#[test]
fn receivers_round_trip_and_deliveries_are_remembered_once() {
    let (_d, store) = store();
    let r = receiver("r1");
    store.insert_receiver(&r).unwrap();
    assert_eq!(store.get_receiver("r1").unwrap(), Some(r.clone()));
    let mut changed = r.clone();
    changed.disabled = true;
    changed.parameters = json!({"num": 2});
    store.update_receiver(&changed).unwrap();
    assert_eq!(store.list_receivers().unwrap(), vec![changed]);
    let week = Duration::from_secs(7 * 24 * 3600);
    assert!(store.record_delivery("r1", "id:a", week).unwrap());
    assert!(
        !store.record_delivery("r1", "id:a", week).unwrap(),
        "a replay"
    );
    assert!(
        store.record_delivery("r2", "id:a", week).unwrap(),
        "per receiver"
    );
    store.forget_delivery("r1", "id:a").unwrap();
    assert!(store.record_delivery("r1", "id:a", week).unwrap());
    // Past the window a delivery is forgotten.
    std::thread::sleep(Duration::from_millis(5));
    assert!(store.record_delivery("r1", "id:a", Duration::ZERO).unwrap());
    assert!(store.delete_receiver("r1").unwrap());
    assert!(!store.delete_receiver("r1").unwrap());
    assert!(matches!(
        store.update_receiver(&r),
        Err(StoreError::NoReceiver(_))
    ));
}

#[test]
fn tasks_round_trip_every_field_and_a_rewrite_keeps_created() {
    let (_d, store) = store();
    let mut t = task("15 30 6 ? * MON-FRI");
    t.title = "Morning".into();
    t.time_zone = "Europe/Berlin".into();
    t.max_occurrences = Some(9);
    t.start_date = Some(1_000);
    t.end_date = Some(9_000_000_000_000);
    t.created = 11;
    t.updated = 12;
    t.last_start = Some(13);
    t.next_fire = Some(14);
    t.occurrences = 15;
    t.state_reason = "why".into();
    t.notify_url = Some("http://127.0.0.1:9/hook".into());
    t.failures_since = 16;
    store.insert_task(&t).unwrap();
    assert_eq!(store.get_task(&t.id).unwrap(), Some(t.clone()));

    let mut changed = task("0 12 1 * *");
    changed.id = t.id.clone();
    changed.item_id = "other.ipynb".into();
    changed.task_type = "Other".into();
    changed.title = "Noon".into();
    changed.user_id = "bob".into();
    changed.dialect = nbexec_schedule::Dialect::Posix;
    changed.parameters = json!({"notebookParameters": {"x": 2}});
    changed.created = 99;
    changed.state = nbexec_schedule::TaskState::Paused;
    changed.notify_url = None;
    let before = chrono::Utc::now().timestamp_millis();
    store.update_task(&changed).unwrap();
    let read = store.get_task(&t.id).unwrap().unwrap();
    assert!(
        read.updated >= before,
        "updated is stamped: {}",
        read.updated
    );
    assert_eq!(read.created, 11, "a rewrite keeps created");
    assert_eq!(
        read,
        nbexec_schedule::Task {
            created: 11,
            updated: read.updated,
            ..changed.clone()
        }
    );

    changed.id = "nosuchtask".into();
    assert!(matches!(
        store.update_task(&changed),
        Err(StoreError::NoTask(_))
    ));
}

#[test]
fn task_ids_resolve_by_unique_prefix() {
    let (_d, store) = store();
    let mut a = task("0 6 * * ?");
    a.id = "aaaa1111".into();
    let mut b = task("0 6 * * ?");
    b.id = "aaaa2222".into();
    store.insert_task(&a).unwrap();
    store.insert_task(&b).unwrap();
    assert_eq!(store.resolve_task("aaaa1").unwrap().id, "aaaa1111");
    assert!(matches!(
        store.resolve_task("aaaa"),
        Err(StoreError::Ambiguous { .. })
    ));
    assert!(matches!(
        store.resolve_task("b"),
        Err(StoreError::NoTask(_))
    ));
}

#[test]
fn the_store_is_private_and_refuses_a_shared_directory() {
    use std::os::unix::fs::PermissionsExt;
    let (d, store) = store();
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let shared = d.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = nbexec_schedule::ScheduleStore::open(&shared).err().unwrap();
    assert!(
        e.to_string().contains("can be written by other users"),
        "{e}"
    );
}
