use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct FmtArgs {
    /// Do not write; exit 1 if any notebook would change
    #[arg(long)]
    check: bool,
    /// Notebooks to rewrite
    #[arg(required = true, value_name = "NB")]
    notebooks: Vec<PathBuf>,
}

pub fn main(args: FmtArgs) -> i32 {
    let mut code = EXIT_OK;
    for path in &args.notebooks {
        match nbexec::format_file(path, args.check) {
            Ok(nbexec::FmtStatus::Unchanged) => {}
            Ok(nbexec::FmtStatus::Changed) if args.check => {
                println!("would reformat {}", path.display());
                code = code.max(EXIT_FAILED);
            }
            Ok(nbexec::FmtStatus::Changed) => println!("reformatted {}", path.display()),
            Err(e) => {
                error_line(&e);
                code = EXIT_USAGE;
            }
        }
    }
    code
}
