use clap::Args;

use super::EXIT_OK;

#[derive(Args)]
pub struct KernelsArgs {
    /// Print JSON (as `jupyter kernelspec list --json`)
    #[arg(long)]
    json: bool,
}

pub fn main(args: KernelsArgs) -> i32 {
    let specs = nbexec_kernel::find_kernelspecs();
    if args.json {
        let json = nbexec_kernel::kernelspecs_json(&specs);
        println!(
            "{}",
            serde_json::to_string_pretty(&json).unwrap_or_default()
        );
        return EXIT_OK;
    }
    if specs.is_empty() {
        println!("No kernels found. Searched:");
    } else {
        println!("Available kernels:");
        let width = specs.iter().map(|s| s.name.len()).max().unwrap_or(0);
        for spec in &specs {
            println!("  {:width$}    {}", spec.name, spec.resource_dir.display());
        }
        println!("Searched:");
    }
    for dir in nbexec_kernel::kernelspec_search_dirs() {
        println!("  {}", dir.display());
    }
    EXIT_OK
}
