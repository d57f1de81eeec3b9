use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE, error_line};

#[derive(Args)]
pub struct ValidateArgs {
    /// Notebooks to check
    #[arg(required = true, value_name = "NB")]
    notebooks: Vec<PathBuf>,
}

pub fn main(args: ValidateArgs) -> i32 {
    let mut code = EXIT_OK;
    for path in &args.notebooks {
        match nbexec::read_notebook_unchecked(path) {
            Ok(nb) => {
                let issues = nbexec_format::validate(&nb);
                if issues.is_empty() {
                    println!("{}: valid", path.display());
                } else {
                    for issue in &issues {
                        println!("{}: {issue}", path.display());
                    }
                    code = code.max(EXIT_FAILED);
                }
            }
            Err(e) => {
                error_line(&e);
                code = EXIT_USAGE;
            }
        }
    }
    code
}
