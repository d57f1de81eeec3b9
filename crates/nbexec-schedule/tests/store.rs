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
