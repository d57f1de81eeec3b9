//! `f=html`: every resource as a plain server-rendered page. A minimal placeholder:
//! the resource's JSON, escaped, in a page with the directory's header.

use serde_json::Value;

/// What a page needs besides the resource.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The absolute URL of the `/admin` root (with the base path).
    pub root_url: String,
    /// The request's path (for the breadcrumb).
    pub path: String,
    /// The signed-in user's name (`""`: anonymous).
    pub user: String,
}

/// Escapes text for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The page of resource `kind` (`root`, `notebooks`, `executeNotebook`, `jobs`,
/// `job`, `cancel`, `error`, …) showing `value`.
pub fn render(kind: &str, value: &Value, ctx: &Ctx) -> String {
    let pretty = serde_json::to_string_pretty(value).unwrap_or_default();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\
         <body><h1>nbexec Notebook Server Administrator Directory</h1>\
         <p><a href=\"{root}\">Home</a> &gt; {path}</p><h2>{kind}</h2><pre>{body}</pre></body></html>\n",
        title = escape(kind),
        root = escape(&ctx.root_url),
        path = escape(&ctx.path),
        kind = escape(kind),
        body = escape(&pretty),
    )
}
