//! Validation errors: where, what, and a hint; printed rustc-style with the source line.

use std::fmt;
use std::path::PathBuf;

use super::node::Pos;

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diag {
    /// The file.
    pub file: PathBuf,
    /// Where in it.
    pub pos: Pos,
    /// The YAML path, e.g. `steps[2].expect[0].text`.
    pub path: String,
    /// What is wrong.
    pub message: String,
    /// A suggestion (`did you mean `expect`?`).
    pub hint: Option<String>,
    /// The source line, for the caret display.
    pub line_text: Option<String>,
}

impl Diag {
    /// An error at `pos` of `file`, quoting its line from `text`.
    pub fn at(
        file: &std::path::Path,
        text: &str,
        pos: Pos,
        path: &str,
        message: String,
        hint: Option<String>,
    ) -> Diag {
        let line_text = (pos.line > 0)
            .then(|| text.lines().nth(pos.line as usize - 1).map(str::to_string))
            .flatten();
        Diag {
            file: file.to_path_buf(),
            pos,
            path: path.to_string(),
            message,
            hint,
            line_text,
        }
    }
}

impl fmt::Display for Diag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}\n  --> {}", self.message, self.file.display())?;
        // Line 0: the whole file, or a command-line flag.
        if self.pos.line > 0 {
            write!(f, ":{}:{}", self.pos.line, self.pos.column)?;
        }
        if !self.path.is_empty() {
            write!(f, " (at `{}`)", self.path)?;
        }
        if let Some(line) = &self.line_text {
            let n = self.pos.line.to_string();
            let pad = " ".repeat(n.len());
            let caret = " ".repeat(self.pos.column.saturating_sub(1) as usize);
            let line = mask_secrets(line);
            write!(f, "\n {pad} |\n {n} | {line}\n {pad} | {caret}^")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "\n  = help: {h}")?;
        }
        Ok(())
    }
}

/// True for a key that names a secret, spelled right or nearly (`client_secret`,
/// `client_secrte`, `password`, `api_token`, …).
fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace('-', "_");
    [
        "secret",
        "password",
        "passwd",
        "token",
        "private",
        "credential",
        "api_key",
        "apikey",
    ]
    .iter()
    .any(|w| k.contains(w))
        || levenshtein(&k, "client_secret") <= 3
}

/// A quoted source line with the value of every secret-looking key replaced by `********`, so
/// that an error about a misspelled or mistyped secret never prints the secret.
pub fn mask_secrets(line: &str) -> String {
    use std::sync::OnceLock;
    static KEY_VALUE: OnceLock<regex::Regex> = OnceLock::new();
    let re = KEY_VALUE.get_or_init(|| {
        // key: value, in block (`key: value`) or flow (`{key: value, …}`) style.
        regex::Regex::new(r#"(["']?)([A-Za-z0-9_\-]+)(["']?)(\s*:\s+|\s*:$)([^,}\]\n]*)"#)
            .expect("a valid pattern")
    });
    re.replace_all(line, |c: &regex::Captures<'_>| {
        let value = c.get(5).map_or("", |m| m.as_str());
        if secret_key(&c[2]) && !value.trim().is_empty() {
            format!("{}{}{}{}********", &c[1], &c[2], &c[3], &c[4])
        } else {
            c[0].to_string()
        }
    })
    .into_owned()
}

/// Edit distance, for "did you mean".
pub fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest candidate within a small edit distance.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions() {
        assert_eq!(
            did_you_mean("expcet", ["expect", "capture", "think"]),
            Some("expect")
        );
        assert_eq!(did_you_mean("zzzzzz", ["expect"]), None);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
    }

    #[test]
    fn secrets_in_quoted_lines_are_masked() {
        for (line, secret) in [
            ("  client_secrte: hunter2", "hunter2"),
            ("  client_secret: [hunter2]", "hunter2"),
            (
                "auth: {client_id: cs-1, clientsecret: hunter2, alg: HS256}",
                "hunter2",
            ),
            ("  \"password\": 'hunter2'", "hunter2"),
            ("  api_token: abc.def.ghi", "abc.def.ghi"),
        ] {
            let masked = mask_secrets(line);
            assert!(!masked.contains(secret), "{line} -> {masked}");
            assert!(masked.contains("********"), "{masked}");
        }
        assert_eq!(mask_secrets("  client_id: cs-1"), "  client_id: cs-1");
        assert_eq!(mask_secrets("  - send: hello"), "  - send: hello");
        let flow = mask_secrets("auth: {client_id: cs-1, client_secret: s3cr3t}");
        assert_eq!(flow, "auth: {client_id: cs-1, client_secret: ********}");
    }

    #[test]
    fn renders_with_caret() {
        let d = Diag {
            file: "a.yaml".into(),
            pos: Pos { line: 3, column: 5 },
            path: "steps[0]".into(),
            message: "unknown key `expcet`".into(),
            hint: Some("did you mean `expect`?".into()),
            line_text: Some("    expcet:".into()),
        };
        let s = d.to_string();
        assert!(s.contains("a.yaml:3:5 (at `steps[0]`)"), "{s}");
        assert!(s.contains(" 3 |     expcet:\n   |     ^"), "{s}");
        assert!(s.ends_with("= help: did you mean `expect`?"));
    }
}
