//! Text for a terminal: everything pacstap prints for a person (summary, warnings, errors,
//! `config check`) passes through here, because much of it comes off the wire.
//!
//! AE titles, user names (a Basic-auth header decodes to any bytes), SNI names, HL7 fields and
//! file names are attacker-chosen. Printed raw, `ESC ] 52 ; c ; … BEL` writes the investigator's
//! clipboard, `ESC [ 2 K` erases the line that showed the alert, a `CSI` (U+009B) does the same
//! on terminals that honour 8-bit controls, and a newline forges a line of the summary.
//!
//! So every control character is shown as an escape instead: C0 (U+0000–U+001F, ESC among
//! them) and DEL as `\x1b`, C1 (U+0080–U+009F, ECMA-48 §5.3) as `\u{9b}`, and the Unicode
//! bidirectional controls (U+202A–U+202E, U+2066–U+2069; Unicode TR #9), which reorder what is
//! shown, as `\u{202e}`. A backslash is left as it is (Windows user names `DOMAIN\user` read
//! as they are), so the escaping is for reading, not for parsing back.

use std::borrow::Cow;
use std::fmt::Write as _;

fn needs_escape(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

fn escape_with(s: &str, keep: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !s.chars().any(|c| needs_escape(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !needs_escape(c) || keep(c) {
            out.push(c);
        } else if (c as u32) < 0x80 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// One value from the wire or from a file (an AE title, a user name, a path): every control
/// character escaped, newlines and tabs included, so it stays on its line.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false)
}

/// A whole text of lines about to be printed (a summary, a message): as
/// [`escape_controls`], but its own line breaks are kept.
pub fn for_terminal(text: &str) -> Cow<'_, str> {
    escape_with(text, |c| c == '\n')
}

/// Prints `pacstap: <msg>` on stderr, control characters escaped (its own line breaks kept):
/// notices (`capturing on eth1`, `reloaded config …`); warnings and errors go through [`warn`]
/// and [`error`].
pub fn say(msg: &str) {
    eprintln!("pacstap: {}", for_terminal(msg));
}

/// `pacstap: warning: <subject>: <reason>` on stderr: something was lost or not done and the
/// run goes on. The one shape of every warning pacstap prints (issue 14), so an operator (or
/// `grep 'pacstap: warning:'` in the journal) finds them all; both parts escaped and kept on
/// one line (a reason that carries a wire string cannot forge a second line).
pub fn warn(subject: &str, reason: &str) {
    eprintln!("{}", warning_line(subject, reason));
}

/// `pacstap: error: <subject>: <reason>` on stderr: what stopped a command (or a reload), said
/// once. The shape of [`warn`].
pub fn error(subject: &str, reason: &str) {
    eprintln!("{}", error_line(subject, reason));
}

/// The line [`warn`] prints (without the newline).
pub fn warning_line(subject: &str, reason: &str) -> String {
    line("warning", subject, reason)
}

/// The line [`error`] prints (without the newline).
pub fn error_line(subject: &str, reason: &str) -> String {
    line("error", subject, reason)
}

/// An empty subject is left out (`pacstap: error: <reason>`): some errors are their own
/// subject (an error chain that begins with what failed).
fn line(level: &str, subject: &str, reason: &str) -> String {
    let mut s = format!("pacstap: {level}: ");
    if !subject.is_empty() {
        s.push_str(&escape_controls(subject));
        s.push_str(": ");
    }
    s.push_str(&escape_controls(reason));
    s
}

/// An error and its causes on one line, each said once, ready for the terminal.
///
/// Error types that put their cause into their own message (`"state file X: {source}"`) and
/// also return it as `source()` would otherwise print the reason twice
/// (`"…: No such file or directory (os error 2): No such file or directory (os error 2)"`):
/// a cause already contained in the text so far is skipped.
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(e);
    while let Some(cause) = next {
        let c = cause.to_string();
        if !c.is_empty() && !text.contains(&c) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&c);
        }
        next = cause.source();
    }
    escape_controls(&text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrap(&'static str, Option<std::io::Error>);
    impl std::fmt::Display for Wrap {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)?;
            if let Some(e) = &self.1 {
                write!(f, ": {e}")?;
            }
            Ok(())
        }
    }
    impl std::error::Error for Wrap {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_ref().map(|e| e as _)
        }
    }

    #[test]
    fn error_chain_says_each_cause_once() {
        let nf = || std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Wrap("state file /x/s.json", Some(nf()));
        let text = error_chain(&e);
        assert_eq!(text.matches(&nf().to_string()).count(), 1, "{text}");
        assert!(text.starts_with("state file /x/s.json: "), "{text}");
        let e = Wrap("cannot open \u{1b}[2K", None);
        assert_eq!(error_chain(&e), "cannot open \\x1b[2K");
    }

    #[test]
    fn osc52_csi_and_newlines_are_shown_not_run() {
        let user = "admin\u{1b}]52;c;ZXZpbA==\u{7}\u{1b}[2K\u{9b}2K\r\nWARNING: fake";
        assert_eq!(
            escape_controls(user),
            "admin\\x1b]52;c;ZXZpbA==\\x07\\x1b[2K\\u{9b}2K\\x0d\\x0aWARNING: fake"
        );
        assert_eq!(
            for_terminal("a\u{1b}b\nc\u{7f}\u{202e}d\\e\n"),
            "a\\x1bb\nc\\x7f\\u{202e}d\\e\n"
        );
    }

    #[test]
    fn warnings_and_errors_have_one_shape_on_one_line() {
        assert_eq!(
            warning_line("/x/a.pcap", "damaged at byte 24: truncated record"),
            "pacstap: warning: /x/a.pcap: damaged at byte 24: truncated record"
        );
        assert_eq!(
            error_line("--metrics-listen", "cannot serve metrics on x"),
            "pacstap: error: --metrics-listen: cannot serve metrics on x"
        );
        assert_eq!(error_line("", "no input"), "pacstap: error: no input");
        let forged = warning_line("evil\nname", "why\npacstap: error: forged");
        assert_eq!(forged.lines().count(), 1, "{forged}");
        assert_eq!(
            forged,
            "pacstap: warning: evil\\x0aname: why\\x0apacstap: error: forged"
        );
    }

    #[test]
    fn clean_text_is_borrowed_unchanged() {
        for s in ["WORKSTATION1 → ORTHANC", "DOMAIN\\user", "Zoë Ω", ""] {
            assert!(matches!(escape_controls(s), Cow::Borrowed(b) if b == s));
        }
        assert!(matches!(for_terminal("two\nlines\n"), Cow::Borrowed(_)));
    }
}
