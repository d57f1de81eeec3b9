use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct FmtArgs {
    /// Do not write; exit 1 if any notebook would change
    #[arg(long)]
    check: bool,
    /// Rewrite nbformat 3 notebooks as 4.5, as Jupyter upgrades them (without it,
    /// fmt refuses to change a notebook's major version)
    #[arg(long)]
    upgrade: bool,
    /// Notebooks to rewrite
    #[arg(required = true, value_name = "NB")]
    notebooks: Vec<PathBuf>,
}

pub fn main(args: FmtArgs) -> i32 {
    let mut code = EXIT_OK;
    for path in &args.notebooks {
        match nbexec::format_file(path, args.check, args.upgrade) {
            Ok(nbexec::FmtStatus::Unchanged) => {}
            Ok(status) if args.check => {
                let verb = match status {
                    nbexec::FmtStatus::Upgraded => "upgrade",
                    _ => "reformat",
                };
                println!("would {verb} {}", path.display());
                code = code.max(EXIT_FAILED);
            }
            Ok(nbexec::FmtStatus::Upgraded) => {
                println!("upgraded {} to nbformat 4.5", path.display())
            }
            Ok(_) => println!("reformatted {}", path.display()),
            Err(e) => {
                error_line(&e);
                code = EXIT_USAGE;
            }
        }
    }
    code
}
