//! The item store: notebooks the server runs, by ArcGIS item id.
//!
//! `<dir>/<itemId>/item.json` (`{"id","title","type":"Notebook","owner","created",
//! "modified","revision"}`) and `<dir>/<itemId>/notebook.ipynb`. Every write is a
//! temporary file renamed into place, so a reader (or a server killed mid-write)
//! never sees a partial file.

use std::path::{Path, PathBuf};

use nbexec_runner::jobs::now_ms;
use serde_json::{Value, json};

/// Why the store could not do something.
#[derive(Debug, thiserror::Error)]
pub enum ItemError {
    #[error("no such item {0}")]
    NotFound(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// One item's record.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub id: String,
    pub title: String,
    pub owner: String,
    /// Epoch milliseconds.
    pub created: i64,
    pub modified: i64,
    /// Grows with every change of the notebook (epoch milliseconds of the change,
    /// made strictly increasing).
    pub revision: i64,
}

impl Item {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "title": self.title,
            "type": "Notebook",
            "owner": self.owner,
            "created": self.created,
            "modified": self.modified,
            "revision": self.revision,
        })
    }

    fn from_json(v: &Value) -> Option<Item> {
        Some(Item {
            id: v.get("id")?.as_str()?.to_owned(),
            title: v
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            owner: v
                .get("owner")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            created: v.get("created").and_then(Value::as_i64).unwrap_or(0),
            modified: v.get("modified").and_then(Value::as_i64).unwrap_or(0),
            revision: v.get("revision").and_then(Value::as_i64).unwrap_or(0),
        })
    }
}

/// Is `id` an item id (32 lowercase hex digits)?
pub fn is_item_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The item store in a directory.
#[derive(Debug, Clone)]
pub struct ItemStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ItemError + '_ {
    move |source| ItemError::Io {
        path: path.to_owned(),
        source,
    }
}

impl ItemStore {
    /// The store in `dir` (created, private, if missing).
    pub fn open(dir: &Path) -> Result<ItemStore, ItemError> {
        nbexec_runner::jobs::create_private_dir(dir).map_err(io(dir))?;
        Ok(ItemStore {
            dir: dir.to_owned(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn item_dir(&self, id: &str) -> Result<PathBuf, ItemError> {
        if !is_item_id(id) {
            return Err(ItemError::NotFound(id.to_owned()));
        }
        Ok(self.dir.join(id))
    }

    /// The notebook of item `id`.
    pub fn notebook_path(&self, id: &str) -> Result<PathBuf, ItemError> {
        Ok(self.item_dir(id)?.join("notebook.ipynb"))
    }

    /// Adds the notebook at `path` (it must parse as a notebook); returns the item.
    pub fn add(&self, path: &Path, title: Option<&str>, owner: &str) -> Result<Item, ItemError> {
        let bytes = std::fs::read(path).map_err(io(path))?;
        nbexec_format::read_slice(&bytes)
            .map_err(|e| ItemError::Invalid(format!("{}: {e}", path.display())))?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let dir = self.dir.join(&id);
        nbexec_runner::jobs::create_private_dir(&dir).map_err(io(&dir))?;
        let title = title.map(str::to_owned).unwrap_or_else(|| {
            path.file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| id.clone())
        });
        let now = now_ms();
        let item = Item {
            id: id.clone(),
            title,
            owner: owner.to_owned(),
            created: now,
            modified: now,
            revision: now,
        };
        let nb_path = dir.join("notebook.ipynb");
        nbexec_runner::save::write_atomic(&nb_path, &bytes).map_err(io(&nb_path))?;
        self.write_record(&item)?;
        Ok(item)
    }

    fn write_record(&self, item: &Item) -> Result<(), ItemError> {
        let path = self.dir.join(&item.id).join("item.json");
        let text = serde_json::to_string_pretty(&item.to_json()).unwrap_or_default() + "\n";
        nbexec_runner::save::write_atomic(&path, text.as_bytes()).map_err(io(&path))
    }

    /// Item `id`, if it exists.
    pub fn get(&self, id: &str) -> Result<Item, ItemError> {
        let dir = self.item_dir(id)?;
        let path = dir.join("item.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ItemError::NotFound(id.to_owned()));
            }
            Err(e) => return Err(io(&path)(e)),
        };
        let v: Value = serde_json::from_str(&text)
            .map_err(|e| ItemError::Invalid(format!("{}: {e}", path.display())))?;
        let item = Item::from_json(&v)
            .ok_or_else(|| ItemError::Invalid(format!("{}: not an item record", path.display())))?;
        if !dir.join("notebook.ipynb").is_file() {
            return Err(ItemError::NotFound(id.to_owned()));
        }
        Ok(item)
    }

    /// Every item, oldest first.
    pub fn list(&self) -> Result<Vec<Item>, ItemError> {
        let mut items = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(io(&self.dir))? {
            let entry = entry.map_err(io(&self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_item_id(&name)
                && let Ok(item) = self.get(&name)
            {
                items.push(item);
            }
        }
        items.sort_by(|a, b| a.created.cmp(&b.created).then(a.id.cmp(&b.id)));
        Ok(items)
    }

    /// Removes item `id`.
    pub fn remove(&self, id: &str) -> Result<(), ItemError> {
        self.get(id)?;
        let dir = self.item_dir(id)?;
        std::fs::remove_dir_all(&dir).map_err(io(&dir))
    }

    /// Replaces item `id`'s notebook by `bytes` (atomically) and advances its
    /// revision; returns the item before and after. The caller serialises
    /// replacements of one item.
    pub fn replace_notebook(&self, id: &str, bytes: &[u8]) -> Result<(Item, Item), ItemError> {
        let before = self.get(id)?;
        let path = self.notebook_path(id)?;
        nbexec_runner::save::write_atomic(&path, bytes).map_err(io(&path))?;
        let now = now_ms();
        let mut after = before.clone();
        after.modified = now;
        after.revision = now.max(before.revision + 1);
        self.write_record(&after)?;
        Ok((before, after))
    }
}
