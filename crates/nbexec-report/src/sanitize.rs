//! The allow-list sanitiser for `text/html` outputs and Markdown: keeps document and
//! table markup, classes and ids (so pandas DataFrames look right) and harmless inline
//! styles; drops scripts, event handlers, `javascript:` and other active URLs, frames,
//! forms, `<style>` blocks and CSS that can run code or fetch.

use std::borrow::Cow;
use std::sync::OnceLock;

fn builder() -> &'static ammonia::Builder<'static> {
    static B: OnceLock<ammonia::Builder<'static>> = OnceLock::new();
    B.get_or_init(|| {
        let mut b = ammonia::Builder::default();
        b.add_generic_attributes(["class", "id", "style", "title", "align", "valign"]);
        b.add_tag_attributes("table", ["border", "cellpadding", "cellspacing"]);
        b.add_tag_attributes("img", ["width", "height"]);
        b.add_tags([
            "caption",
            "colgroup",
            "col",
            "details",
            "summary",
            "figure",
            "figcaption",
        ]);
        // Task-list checkboxes; the filter keeps only `type="checkbox"`.
        b.add_tags(["input"]);
        b.add_tag_attributes("input", ["type", "checked", "disabled"]);
        b.add_url_schemes(["data"]);
        b.attribute_filter(filter_attribute);
        b
    })
}

fn filter_attribute<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    let lower = value.trim().to_ascii_lowercase();
    if attribute == "style" {
        // No escapes (they can spell anything), no url()/image-set() fetches, no
        // expression()/behavior/binding (old engines ran code from CSS).
        const BAD: [&str; 8] = [
            "\\",
            "expression",
            "url(",
            "image-set",
            "javascript",
            "behavior",
            "binding",
            "@import",
        ];
        if BAD.iter().any(|b| lower.contains(b)) {
            return None;
        }
    }
    if element == "input" && attribute == "type" && lower != "checkbox" {
        return None;
    }
    // Images come from the page itself or nowhere: a report makes no requests.
    if element == "img" && attribute == "src" && !is_data_image(&lower) {
        return None;
    }
    if lower.starts_with("data:") && !(element == "img" && attribute == "src") {
        return None;
    }
    Some(Cow::Borrowed(value))
}

/// Raster images only: `data:image/svg+xml` in an `<img>` cannot script, but keep it
/// simple and allow the formats notebooks embed.
fn is_data_image(lower: &str) -> bool {
    [
        "data:image/png",
        "data:image/jpeg",
        "data:image/gif",
        "data:image/webp",
        "data:image/svg+xml",
    ]
    .iter()
    .any(|p| lower.starts_with(p))
}

/// Sanitises an HTML fragment.
pub fn clean(html: &str) -> String {
    builder().clean(html).to_string()
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn dataframe_markup_survives() {
        let html = "<table border=\"1\" class=\"dataframe\"><thead><tr style=\"text-align: right;\"><th>a</th></tr></thead></table>";
        let out = clean(html);
        assert!(out.contains("class=\"dataframe\""), "{out}");
        assert!(out.contains("text-align: right"), "{out}");
        assert!(out.contains("border=\"1\""), "{out}");
    }

    #[test]
    fn active_content_goes() {
        for bad in [
            "<script>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<div style=\"width: expression(alert(1))\">x</div>",
            "<a href=\"data:text/html,<script>alert(1)</script>\">x</a>",
        ] {
            let out = clean(bad).to_ascii_lowercase();
            assert!(!out.contains("alert"), "{bad} -> {out}");
        }
    }
}

#[cfg(test)]
mod img_tests {
    #[test]
    fn images_only_from_data_uris() {
        let out = super::clean(
            "<img src=x onerror=alert(1)><img src=\"https://example.org/a.png\"><img src=\"data:image/png;base64,AAAA\">",
        );
        assert_eq!(out, "<img><img><img src=\"data:image/png;base64,AAAA\">");
    }
}
