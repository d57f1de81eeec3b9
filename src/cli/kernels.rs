use clap::Args;

use super::{EXIT_OK, error_line};

#[derive(Args)]
pub struct KernelsArgs {
    /// Print JSON (as `jupyter kernelspec list --json`)
    #[arg(long)]
    json: bool,
    /// List the kernels of this Jupyter gateway instead (default: $JUPYTER_GATEWAY_URL)
    #[arg(long = "gateway-url", value_name = "URL")]
    gateway_url: Option<String>,
}

pub fn main(args: KernelsArgs) -> i32 {
    match nbexec_gateway::GatewayConfig::from_env(args.gateway_url.as_deref()) {
        Ok(Some(cfg)) => return remote(cfg, args.json),
        Ok(None) => {}
        Err(e) => {
            error_line(e);
            return super::EXIT_USAGE;
        }
    }
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

/// The kernelspecs of a gateway (`GET /api/kernelspecs`).
fn remote(cfg: nbexec_gateway::GatewayConfig, json: bool) -> i32 {
    let url = cfg.url.clone();
    let specs = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let gateway = nbexec_gateway::Gateway::new(cfg).map_err(|e| e.to_string())?;
                gateway.kernelspecs().await.map_err(|e| e.to_string())
            })
        });
    let specs = match specs {
        Ok(s) => s,
        Err(e) => {
            error_line(&e);
            return 2;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&specs).unwrap_or_default()
        );
        return EXIT_OK;
    }
    let default = specs["default"].as_str().unwrap_or("");
    let names: Vec<(&String, &serde_json::Value)> = specs["kernelspecs"]
        .as_object()
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    if names.is_empty() {
        println!("No kernels at {url}");
        return EXIT_OK;
    }
    println!("Available kernels at {url}:");
    let width = names.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    for (name, spec) in names {
        let display = spec["spec"]["display_name"].as_str().unwrap_or("");
        let mark = if name == default { " (default)" } else { "" };
        println!("  {name:width$}    {display}{mark}");
    }
    EXIT_OK
}
