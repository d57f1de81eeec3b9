//! `nbexec users`: the users file of `nbexec serve --users FILE` (names, roles,
//! argon2id password hashes). Passwords are read from standard input, never from the
//! command line (where `ps` and shell history would show them).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand};
use nbexec_serve::auth::{Role, Users, hash_password};

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct UsersArgs {
    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Add a user, or change an existing user's role and password (the password is read
    /// from standard input: its first line)
    Add {
        /// The user name (letters, digits and . _ @ -)
        name: String,
        /// admin sees and cancels every job; user only their own
        #[arg(long, value_parser = ["admin", "user"], default_value = "user")]
        role: String,
        /// The users file (created if missing)
        #[arg(long, short = 'f', value_name = "FILE", env = "NBEXEC_USERS")]
        file: PathBuf,
    },
    /// Remove a user (their tokens stop working at once on a running server)
    Rm {
        /// The user name
        name: String,
        /// The users file
        #[arg(long, short = 'f', value_name = "FILE", env = "NBEXEC_USERS")]
        file: PathBuf,
    },
    /// List the users and their roles
    List {
        /// The users file
        #[arg(long, short = 'f', value_name = "FILE", env = "NBEXEC_USERS")]
        file: PathBuf,
    },
    /// Print the argon2id hash of the password read from standard input (for a users
    /// file written by hand)
    Hash,
}

/// The first line of standard input, without its line ending. A terminal gets a prompt
/// (the password is echoed: pipe it in to keep it off the screen).
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password: ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err("no password on standard input (give it as its first line)".into());
    }
    Ok(password.to_owned())
}

pub fn main(args: UsersArgs) -> i32 {
    match args.command {
        UsersCommand::Hash => {
            match read_password().and_then(|p| hash_password(&p).map_err(|e| e.to_string())) {
                Ok(hash) => {
                    println!("{hash}");
                    EXIT_OK
                }
                Err(e) => {
                    error_line(e);
                    EXIT_USAGE
                }
            }
        }
        UsersCommand::List { file } => match Users::load(&file) {
            Ok(users) => {
                for u in &users.users {
                    println!("{}\t{}", u.name, u.role.as_str());
                }
                EXIT_OK
            }
            Err(e) => {
                error_line(e);
                EXIT_FAILED
            }
        },
        UsersCommand::Rm { name, file } => {
            let mut users = match Users::load(&file) {
                Ok(u) => u,
                Err(e) => {
                    error_line(e);
                    return EXIT_FAILED;
                }
            };
            if !users.remove(&name) {
                error_line(format!("no user `{name}` in {}", file.display()));
                return EXIT_FAILED;
            }
            match users.save(&file) {
                Ok(()) => {
                    eprintln!("removed user {name}");
                    EXIT_OK
                }
                Err(e) => {
                    error_line(e);
                    EXIT_FAILED
                }
            }
        }
        UsersCommand::Add { name, role, file } => {
            let role: Role = role.parse().expect("clap checked the role");
            if let Err(e) = nbexec_serve::auth::check_user_name(&name) {
                error_line(e);
                return EXIT_USAGE;
            }
            let mut users = match Users::load_or_empty(&file) {
                Ok(u) => u,
                Err(e) => {
                    error_line(e);
                    return EXIT_FAILED;
                }
            };
            let password = match read_password() {
                Ok(p) => p,
                Err(e) => {
                    error_line(e);
                    return EXIT_USAGE;
                }
            };
            let added = match users.upsert(&name, &password, role) {
                Ok(added) => added,
                Err(e) => {
                    error_line(e);
                    return EXIT_USAGE;
                }
            };
            match users.save(&file) {
                Ok(()) => {
                    let verb = if added { "added" } else { "updated" };
                    eprintln!(
                        "{verb} user {name} ({}) in {}",
                        role.as_str(),
                        file.display()
                    );
                    EXIT_OK
                }
                Err(e) => {
                    error_line(e);
                    EXIT_FAILED
                }
            }
        }
    }
}
