//! `nbexec items`: the item store `nbexec serve` runs notebooks from.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct ItemsArgs {
    #[command(subcommand)]
    command: ItemsCommand,
}

#[derive(Args, Clone)]
struct Where {
    /// The item store (default: <state dir>/items)
    #[arg(long, value_name = "DIR")]
    items: Option<PathBuf>,
    /// The state directory (default: $NBEXEC_STATE_DIR, $XDG_STATE_HOME/nbexec, ~/.local/state/nbexec)
    #[arg(long = "state-dir", value_name = "DIR")]
    state_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ItemsCommand {
    /// Add a notebook to the store; prints its new item id
    Add {
        /// The notebook to add (copied into the store)
        #[arg(value_name = "NB")]
        notebook: PathBuf,
        /// The item's title (default: the file's name without .ipynb)
        #[arg(long, value_name = "T")]
        title: Option<String>,
        /// The item's owner (a user name)
        #[arg(long, value_name = "U", default_value = "")]
        owner: String,
        #[command(flatten)]
        place: Where,
    },
    /// List the items: id, revision, owner, title
    List {
        /// Print JSON (one array of item records)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        place: Where,
    },
    /// Remove an item and its notebook
    Rm {
        /// The item's id (32 hex digits)
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        place: Where,
    },
}

fn store(place: &Where) -> Result<nbexec_serve::ItemStore, i32> {
    let dir = place.items.clone().unwrap_or_else(|| {
        place
            .state_dir
            .clone()
            .unwrap_or_else(nbexec::jobs::default_state_dir)
            .join("items")
    });
    nbexec_serve::ItemStore::open(&dir).map_err(|e| {
        error_line(e);
        EXIT_FAILED
    })
}

pub fn main(args: ItemsArgs) -> i32 {
    let result = match args.command {
        ItemsCommand::Add {
            notebook,
            title,
            owner,
            place,
        } => store(&place).and_then(|s| match s.add(&notebook, title.as_deref(), &owner) {
            Ok(item) => {
                println!("{}", item.id);
                Ok(EXIT_OK)
            }
            Err(e) => {
                error_line(e);
                Err(EXIT_USAGE)
            }
        }),
        ItemsCommand::List { json, place } => store(&place).and_then(|s| match s.list() {
            Ok(items) => {
                if json {
                    let v: Vec<serde_json::Value> = items.iter().map(|i| i.to_json()).collect();
                    println!("{}", serde_json::Value::from(v));
                } else {
                    for i in items {
                        println!("{}  {}  {}  {}", i.id, i.revision, i.owner, i.title);
                    }
                }
                Ok(EXIT_OK)
            }
            Err(e) => {
                error_line(e);
                Err(EXIT_FAILED)
            }
        }),
        ItemsCommand::Rm { id, place } => store(&place).and_then(|s| match s.remove(&id) {
            Ok(()) => Ok(EXIT_OK),
            Err(e @ nbexec_serve::ItemError::NotFound(_)) => {
                error_line(e);
                Err(EXIT_USAGE)
            }
            Err(e) => {
                error_line(e);
                Err(EXIT_FAILED)
            }
        }),
    };
    result.unwrap_or_else(|code| code)
}
