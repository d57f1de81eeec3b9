use std::path::PathBuf;

use clap::Args;

use super::{EXIT_FAILED, EXIT_OK, error_line, warning_line};

#[derive(Args)]
pub struct InspectArgs {
    /// The notebook
    #[arg(value_name = "NB")]
    notebook: PathBuf,
    /// Print JSON (papermill's keys: name, inferred_type_name, default, help)
    #[arg(long)]
    json: bool,
    /// Read the parameters cell as this kernel's language
    #[arg(short = 'k', long = "kernel", value_name = "NAME")]
    kernel: Option<String>,
    /// Read the parameters cell as this language
    #[arg(short = 'l', long = "language", value_name = "LANG")]
    language: Option<String>,
}

pub fn main(args: InspectArgs) -> i32 {
    show(
        &args.notebook,
        args.kernel.as_deref(),
        args.language.as_deref(),
        args.json,
        EXIT_OK,
    )
}

/// Prints the parameters `notebook` takes; also `nbexec run --help-notebook`.
///
/// As papermill: a notebook without a `parameters` cell takes none (`inspect` exits
/// 0; papermill's `--help-notebook` exits `no_cell_exit`, 1), and a language nbexec
/// cannot inspect gives a warning and no parameters.
pub fn show(
    notebook: &std::path::Path,
    kernel: Option<&str>,
    language: Option<&str>,
    json: bool,
    no_cell_exit: i32,
) -> i32 {
    let args = InspectArgs {
        notebook: notebook.to_owned(),
        json,
        kernel: kernel.map(str::to_owned),
        language: language.map(str::to_owned),
    };
    let nb = match nbexec::read_notebook(&args.notebook) {
        Ok(nb) => nb,
        Err(e) => {
            error_line(&e);
            return e.exit_code();
        }
    };
    let parameters = match nbexec_params::inspect_notebook(
        &nb,
        args.kernel.as_deref(),
        args.language.as_deref(),
    ) {
        Ok(Some(i)) => i.parameters,
        Ok(None) => {
            if args.json {
                println!("[]");
                return EXIT_OK;
            }
            print_header(&args.notebook);
            println!("\n  No cell tagged 'parameters'");
            return no_cell_exit;
        }
        Err(e @ nbexec_params::ParamError::InspectionUnsupported { .. }) => {
            warning_line(format!("{}: {e}", args.notebook.display()));
            Vec::new()
        }
        Err(e) => {
            error_line(format!("{}: {e}", args.notebook.display()));
            return EXIT_FAILED;
        }
    };
    if args.json {
        let list: Vec<serde_json::Value> = parameters.iter().map(|p| p.to_json()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return EXIT_OK;
    }
    // papermill's --help-notebook layout.
    print_header(&args.notebook);
    if parameters.is_empty() {
        println!(
            "\n  Can't infer anything about this notebook's parameters. \
             It may not have any parameter defined."
        );
    }
    for p in &parameters {
        let type_repr = match p.papermill_type_name() {
            "None" => "Unknown type",
            t => t,
        };
        let default = p.default.as_deref().unwrap_or("None");
        let definition = format!("  {}: {type_repr} (default {default})", p.name);
        if definition.chars().count() > 30 {
            if p.help.is_empty() {
                println!("{definition}");
            } else {
                println!("{definition}\n{}{}", " ".repeat(34), p.help);
            }
        } else {
            println!("{definition:<34}{}", p.help);
        }
    }
    EXIT_OK
}

fn print_header(notebook: &std::path::Path) {
    println!("Parameters inferred for notebook '{}':", notebook.display());
}
