//! Turning byte offsets into `key at line L, column C` for config errors.
//!
//! serde's errors carry a byte span but not the key path (toml keeps it private), so the
//! document is parsed a second time into spanned tables and the deepest key whose key or value
//! span contains the error is named. Validation errors go the other way: from a key path to
//! its span.

use super::ConfigIssue;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Locate a serde / syntax error.
pub(super) fn from_toml_error(doc: &str, e: &toml::de::Error) -> ConfigIssue {
    let message = friendly(e.message());
    let Some(span) = e.span() else {
        return ConfigIssue {
            key: None,
            line: 0,
            column: 0,
            message,
        };
    };
    let mut pos = span.start;
    let key = DeTable::parse(doc).ok().and_then(|root| {
        let mut path = Vec::new();
        deepest(root.get_ref(), span.start, &mut path);
        // A custom error on an array element carries the span of the whole array: point at the
        // element whose text the message quotes.
        if let Some(DeValue::Array(items)) = value_at(root.get_ref(), &path).map(|v| v.get_ref()) {
            let hit = items.iter().enumerate().find(|(_, it)| {
                it.get_ref()
                    .as_str()
                    .is_some_and(|s| message.contains(&format!("found {s:?}")))
            });
            if let Some((i, it)) = hit {
                path.push(Seg::Index(i));
                pos = it.span().start;
            }
        }
        (!path.is_empty()).then(|| join(&path))
    });
    let (line, column) = line_col(doc, pos);
    ConfigIssue {
        key,
        line,
        column,
        message,
    }
}

/// Locate a key path (`rules.bulk_export.threshold`, `inventory.dicom[1].ip`); a key that is
/// not in the document (a default) is named without a position.
pub(super) fn at_key(doc: &str, key: &str, message: String) -> ConfigIssue {
    let pos = DeTable::parse(doc)
        .ok()
        .and_then(|root| find(root.get_ref(), &parse_path(key)));
    let (line, column) = pos.map(|p| line_col(doc, p)).unwrap_or((0, 0));
    ConfigIssue {
        key: Some(key.to_string()),
        line,
        column,
        message,
    }
}

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn join(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => {
                s.push('[');
                s.push_str(&i.to_string());
                s.push(']');
            }
        }
    }
    s
}

fn parse_path(key: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let mut rest = part;
        if let Some(b) = rest.find('[') {
            out.push(Seg::Key(rest[..b].to_string()));
            rest = &rest[b..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(e) = stripped.find(']') else { break };
                if let Ok(i) = stripped[..e].parse() {
                    out.push(Seg::Index(i));
                }
                rest = &stripped[e + 1..];
            }
        } else {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

fn contains(span: &std::ops::Range<usize>, pos: usize) -> bool {
    span.start <= pos && pos < span.end.max(span.start + 1)
}

/// Push the deepest key path whose key or value contains `pos`.
fn deepest(table: &DeTable<'_>, pos: usize, path: &mut Vec<Seg>) -> bool {
    for (k, v) in table.iter() {
        let in_key = contains(&k.span(), pos);
        let in_val = contains(&v.span(), pos);
        path.push(Seg::Key(k.get_ref().to_string()));
        if descend(v, pos, path) || in_key || in_val {
            return true;
        }
        path.pop();
    }
    false
}

fn descend(v: &Spanned<DeValue<'_>>, pos: usize, path: &mut Vec<Seg>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => deepest(t, pos, path),
        DeValue::Array(a) => {
            for (i, item) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if descend(item, pos, path) || contains(&item.span(), pos) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// The value at `path`.
fn value_at<'a, 'i>(root: &'a DeTable<'i>, path: &[Seg]) -> Option<&'a Spanned<DeValue<'i>>> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let (_, v) = root.iter().find(|(key, _)| key.get_ref() == k)?;
    let mut cur = v;
    let mut rest = rest;
    while let Some((seg, tail)) = rest.split_first() {
        cur = match (seg, cur.get_ref()) {
            (Seg::Key(k), DeValue::Table(t)) => t.iter().find(|(key, _)| key.get_ref() == k)?.1,
            (Seg::Index(i), DeValue::Array(a)) => a.get(*i)?,
            _ => return None,
        };
        rest = tail;
    }
    Some(cur)
}

/// Byte offset of the value at `path`.
fn find(root: &DeTable<'_>, path: &[Seg]) -> Option<usize> {
    let (first, rest) = path.split_first()?;
    let Seg::Key(k) = first else { return None };
    let (_, v) = root.iter().find(|(key, _)| key.get_ref() == k)?;
    find_in(v, rest)
}

fn find_in(v: &Spanned<DeValue<'_>>, path: &[Seg]) -> Option<usize> {
    let Some((first, rest)) = path.split_first() else {
        return Some(v.span().start);
    };
    match (first, v.get_ref()) {
        (Seg::Key(_), DeValue::Table(t)) => find(t, path),
        (Seg::Index(i), DeValue::Array(a)) => find_in(a.get(*i)?, rest),
        _ => None,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(doc: &str, pos: usize) -> (usize, usize) {
    let pos = pos.min(doc.len());
    let mut line = 1;
    let mut line_start = 0;
    for (i, b) in doc.bytes().enumerate().take(pos) {
        if b == b'\n' {
            line += 1;
            line_start = i + 1;
        }
    }
    let col = doc.get(line_start..pos).map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, col)
}

/// serde's type names in words an operator reads.
fn friendly(msg: &str) -> String {
    let mut m = msg.trim().to_string();
    for (from, to) in [
        ("expected u64", "expected a non-negative integer"),
        ("expected u32", "expected a non-negative integer"),
        ("expected u16", "expected an integer from 0 to 65535"),
        ("expected usize", "expected a non-negative integer"),
        ("expected i64", "expected an integer"),
        ("expected f64", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ] {
        if let Some(p) = m.find(from) {
            m = format!("{}{}{}", &m[..p], to, &m[p + from.len()..]);
        }
    }
    // "invalid type: string \"many\", expected an integer" → put the expectation first.
    if let Some(rest) = m.strip_prefix("invalid type: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {found}");
        }
    }
    if let Some(rest) = m.strip_prefix("invalid value: ") {
        if let Some((found, expected)) = rest.split_once(", expected ") {
            return format!("expected {expected}, found {found}");
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(
            parse_path("inventory.dicom[2].ip"),
            vec![
                Seg::Key("inventory".into()),
                Seg::Key("dicom".into()),
                Seg::Index(2),
                Seg::Key("ip".into())
            ]
        );
        assert_eq!(join(&parse_path("a.b[3].c")), "a.b[3].c");
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncdé\nx", 7), (2, 4));
        assert_eq!(line_col("", 5), (1, 1));
    }
}
