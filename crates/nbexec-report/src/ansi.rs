//! ANSI SGR escapes to HTML spans with nbconvert's `ansi-*` classes, and the terminal
//! semantics of `\r` and backspace in stream text.

use crate::escape::push_escaped;

const COLORS: [&str; 16] = [
    "ansi-black",
    "ansi-red",
    "ansi-green",
    "ansi-yellow",
    "ansi-blue",
    "ansi-magenta",
    "ansi-cyan",
    "ansi-white",
    "ansi-black-intense",
    "ansi-red-intense",
    "ansi-green-intense",
    "ansi-yellow-intense",
    "ansi-blue-intense",
    "ansi-magenta-intense",
    "ansi-cyan-intense",
    "ansi-white-intense",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Color {
    Index(u8),
    Rgb(u8, u8, u8),
}

#[derive(Clone, Copy, Default, PartialEq, Debug)]
struct Style {
    fg: Option<Color>,
    bg: Option<Color>,
    bold: bool,
    underline: bool,
    inverse: bool,
}

impl Style {
    fn open_tag(&self, out: &mut String) -> bool {
        if *self == Style::default() {
            return false;
        }
        let mut fg = self.fg;
        // Bold turns the eight basic foreground colours into their intense variants.
        if let (true, Some(Color::Index(n))) = (self.bold, fg)
            && n < 8
        {
            fg = Some(Color::Index(n + 8));
        }
        let mut bg = self.bg;
        if self.inverse {
            std::mem::swap(&mut fg, &mut bg);
        }
        let mut classes: Vec<String> = Vec::new();
        let mut styles: Vec<String> = Vec::new();
        match fg {
            Some(Color::Index(n)) => classes.push(format!("{}-fg", COLORS[n as usize])),
            Some(Color::Rgb(r, g, b)) => styles.push(format!("color: rgb({r},{g},{b})")),
            None if self.inverse => classes.push("ansi-default-inverse-fg".into()),
            None => {}
        }
        match bg {
            Some(Color::Index(n)) => classes.push(format!("{}-bg", COLORS[n as usize])),
            Some(Color::Rgb(r, g, b)) => styles.push(format!("background-color: rgb({r},{g},{b})")),
            None if self.inverse => classes.push("ansi-default-inverse-bg".into()),
            None => {}
        }
        if self.bold {
            classes.push("ansi-bold".into());
        }
        if self.underline {
            classes.push("ansi-underline".into());
        }
        out.push_str("<span");
        if !classes.is_empty() {
            out.push_str(" class=\"");
            out.push_str(&classes.join(" "));
            out.push('"');
        }
        if !styles.is_empty() {
            out.push_str(" style=\"");
            out.push_str(&styles.join("; "));
            out.push('"');
        }
        out.push('>');
        true
    }

    fn apply(&mut self, codes: &[i64]) {
        let mut i = 0;
        while i < codes.len() {
            let n = codes[i];
            i += 1;
            match n {
                0 => *self = Style::default(),
                1 | 5 => self.bold = true,
                4 => self.underline = true,
                7 => self.inverse = true,
                21 | 22 => self.bold = false,
                24 => self.underline = false,
                27 => self.inverse = false,
                30..=37 => self.fg = Some(Color::Index((n - 30) as u8)),
                39 => self.fg = None,
                40..=47 => self.bg = Some(Color::Index((n - 40) as u8)),
                49 => self.bg = None,
                90..=97 => self.fg = Some(Color::Index((n - 90 + 8) as u8)),
                100..=107 => self.bg = Some(Color::Index((n - 100 + 8) as u8)),
                38 | 48 => match extended(codes, &mut i) {
                    Some(c) if n == 38 => self.fg = Some(c),
                    Some(c) => self.bg = Some(c),
                    None => i = codes.len(),
                },
                _ => {}
            }
        }
    }
}

/// `38;5;n` or `38;2;r;g;b` after the 38/48; `None` when malformed (the rest is dropped).
fn extended(codes: &[i64], i: &mut usize) -> Option<Color> {
    let kind = *codes.get(*i)?;
    *i += 1;
    let rest = &codes[*i..];
    if kind == 2 && rest.len() >= 3 {
        *i += 3;
        let ok = |c: i64| (0..=255).contains(&c);
        if !(ok(rest[0]) && ok(rest[1]) && ok(rest[2])) {
            return None;
        }
        return Some(Color::Rgb(rest[0] as u8, rest[1] as u8, rest[2] as u8));
    }
    if kind == 5 && !rest.is_empty() {
        *i += 1;
        let idx = rest[0];
        return match idx {
            0..=15 => Some(Color::Index(idx as u8)),
            16..=231 => {
                let level = |v: i64| if v > 0 { (55 + v * 40) as u8 } else { 0 };
                let k = idx - 16;
                Some(Color::Rgb(level(k / 36), level((k % 36) / 6), level(k % 6)))
            }
            232..=255 => {
                let v = ((idx - 232) * 10 + 8) as u8;
                Some(Color::Rgb(v, v, v))
            }
            _ => None,
        };
    }
    None
}

/// Finds the next escape sequence `ESC [ params final` (final byte in `@`..=`~`).
fn next_escape(text: &str) -> Option<(usize, usize, &str, char)> {
    let mut from = 0;
    while let Some(pos) = text[from..].find("\x1b[") {
        let start = from + pos;
        let body = &text[start + 2..];
        if let Some((off, ch)) = body.char_indices().find(|(_, c)| ('@'..='~').contains(c)) {
            return Some((start, start + 2 + off + ch.len_utf8(), &body[..off], ch));
        }
        from = start + 2;
        if from >= text.len() {
            break;
        }
    }
    None
}

/// Appends `text` as HTML: escaped, with SGR colours as `<span class="ansi-…">` and every
/// other escape sequence removed (nbconvert's `ansi2html`).
pub fn ansi_to_html(text: &str, out: &mut String) {
    let mut style = Style::default();
    let mut rest = text;
    loop {
        let (chunk, esc) = match next_escape(rest) {
            Some((s, e, params, fin)) => (&rest[..s], Some((e, params, fin))),
            None => (rest, None),
        };
        if !chunk.is_empty() {
            let open = style.open_tag(out);
            push_escaped(out, chunk);
            if open {
                out.push_str("</span>");
            }
        }
        match esc {
            Some((end, params, fin)) => {
                if fin == 'm' {
                    let codes: Result<Vec<i64>, _> = params
                        .split(';')
                        .map(|p| if p.is_empty() { Ok(0) } else { p.parse() })
                        .collect();
                    if let Ok(codes) = codes {
                        style.apply(&codes);
                    }
                }
                rest = &rest[end..];
            }
            None => break,
        }
    }
}

/// Applies carriage returns and backspaces as a terminal would: `\r` not followed by
/// `\n` returns to the start of the line (the line is overwritten), `\b` deletes the
/// previous character of the line. `\r\n` is a newline.
pub fn apply_terminal_controls(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains(['\r', '\x08']) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let line = line.strip_suffix('\r').unwrap_or(line);
        // Keep only what follows the last carriage return.
        let line = match line.rfind('\r') {
            Some(p) => &line[p + 1..],
            None => line,
        };
        let start = out.len();
        for ch in line.chars() {
            if ch == '\x08' {
                if out.len() > start {
                    out.pop();
                }
            } else {
                out.push(ch);
            }
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn html(s: &str) -> String {
        let mut o = String::new();
        ansi_to_html(s, &mut o);
        o
    }

    #[test]
    fn colours_become_nbconvert_classes() {
        assert_eq!(
            html("\x1b[31mred\x1b[0m plain"),
            "<span class=\"ansi-red-fg\">red</span> plain"
        );
        assert_eq!(
            html("\x1b[1;32mok\x1b[0m"),
            "<span class=\"ansi-green-intense-fg ansi-bold\">ok</span>"
        );
        assert_eq!(
            html("\x1b[44m<b>\x1b[49m"),
            "<span class=\"ansi-blue-bg\">&lt;b&gt;</span>"
        );
        assert_eq!(
            html("\x1b[38;5;196mx"),
            "<span style=\"color: rgb(255,0,0)\">x</span>"
        );
        assert_eq!(html("\x1b[2Kclear\x1b[Ax"), "clearx");
    }

    #[test]
    fn carriage_returns_overwrite_the_line() {
        assert_eq!(
            apply_terminal_controls("10%\r50%\r100%\ndone\r\n"),
            "100%\ndone\n"
        );
        assert_eq!(apply_terminal_controls("abc\x08\x08d"), "ad");
    }
}
