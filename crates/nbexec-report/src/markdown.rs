//! Markdown cells and `text/markdown` outputs: CommonMark with tables, strikethrough and
//! task lists; headings get nbconvert-style ids and `¶` anchor links; `attachment:`
//! images resolve to data URIs; math is passed through as `$…$` text for MathJax.

use std::collections::HashSet;

use pulldown_cmark::{CowStr, Event, HeadingLevel, Options, Parser, Tag, TagEnd, html};
use serde_json::{Map, Value};

use crate::escape::push_escaped;

/// Renders Markdown to HTML (not sanitised). `attachments` is the cell's `attachments`
/// map; `ids` collects heading ids already used in the page.
pub fn to_html(
    source: &str,
    attachments: Option<&Map<String, Value>>,
    ids: &mut HashSet<String>,
) -> String {
    let opts = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_MATH
        | Options::ENABLE_GFM;
    let mut out = String::with_capacity(source.len() * 3 / 2);
    let mut events: Vec<Event> = Vec::new();
    let mut heading: Option<(HeadingLevel, Vec<Event>)> = None;
    for ev in Parser::new_ext(source, opts) {
        let ev = match ev {
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url =
                    resolve_attachment(&dest_url, attachments).map_or(dest_url, CowStr::from);
                Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                })
            }
            Event::InlineMath(m) => Event::Html(CowStr::from(math("$", &m, "$"))),
            Event::DisplayMath(m) => Event::Html(CowStr::from(math("$$", &m, "$$"))),
            other => other,
        };
        match (&mut heading, ev) {
            (None, Event::Start(Tag::Heading { level, .. })) => heading = Some((level, Vec::new())),
            (Some(_), Event::End(TagEnd::Heading(_))) => {
                let (level, inner) = heading.take().expect("in a heading");
                html::push_html(&mut out, events.drain(..));
                write_heading(&mut out, level, inner, ids);
            }
            (Some((_, inner)), ev) => inner.push(ev),
            (None, ev) => events.push(ev),
        }
    }
    html::push_html(&mut out, events.into_iter());
    out
}

fn math(open: &str, body: &str, close: &str) -> String {
    let mut s = String::with_capacity(body.len() + 4);
    s.push_str(open);
    push_escaped(&mut s, body);
    s.push_str(close);
    s
}

fn write_heading(
    out: &mut String,
    level: HeadingLevel,
    inner: Vec<Event>,
    ids: &mut HashSet<String>,
) {
    let mut text = String::new();
    for ev in &inner {
        match ev {
            Event::Text(t) | Event::Code(t) => text.push_str(t),
            Event::Html(t) | Event::InlineHtml(t) => text.push_str(t),
            _ => {}
        }
    }
    let base: String = text.split_whitespace().collect::<Vec<_>>().join("-");
    let base: String = base
        .chars()
        .filter(|c| !matches!(c, '"' | '\'' | '<' | '>' | '&'))
        .collect();
    let mut id = base.clone();
    let mut n = 1;
    while !ids.insert(id.clone()) {
        id = format!("{base}-{n}");
        n += 1;
    }
    let mut id_html = String::new();
    push_escaped(&mut id_html, &id);
    let n = level as usize;
    out.push_str(&format!("<h{n} id=\"{id_html}\">"));
    html::push_html(out, inner.into_iter());
    out.push_str(&format!(
        "<a class=\"anchor-link\" href=\"#{id_html}\">¶</a></h{n}>\n"
    ));
}

/// `attachment:NAME` → `data:MIME;base64,…` from the cell's attachments.
fn resolve_attachment(url: &str, attachments: Option<&Map<String, Value>>) -> Option<String> {
    let name = url.strip_prefix("attachment:")?;
    let bundle = attachments?.get(name)?.as_object()?;
    let (mime, data) = bundle.iter().find_map(|(k, v)| {
        let text = match v {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
            _ => return None,
        };
        k.starts_with("image/").then_some((k.clone(), text))
    })?;
    let data: String = if mime == "image/svg+xml" {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(data.as_bytes())
    } else {
        data.chars().filter(|c| !c.is_whitespace()).collect()
    };
    Some(format!("data:{mime};base64,{data}"))
}
