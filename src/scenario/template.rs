//! `{{name}}` templates: compiled once, rendered per user and iteration with a lookup.

use std::fmt;

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Var(String),
}

/// Why a text is not a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

impl Template {
    /// Compiles `text`; `{{ name }}` (spaces allowed) is a variable, everything else literal.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Lit(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| TemplateError(format!("unclosed `{{{{` in `{text}`")))?;
            let name = after[..close].trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_alphanumeric() || c == '_' || c == '.' || c == '-')
            {
                return Err(TemplateError(format!(
                    "`{{{{{name}}}}}` is not a variable name (letters, digits, `_`, `-`, `.`)"
                )));
            }
            parts.push(Part::Var(name.to_string()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Lit(rest.to_string()));
        }
        Ok(Template { parts })
    }

    /// A template of fixed text.
    pub fn literal(text: &str) -> Template {
        Template {
            parts: if text.is_empty() {
                vec![]
            } else {
                vec![Part::Lit(text.to_string())]
            },
        }
    }

    /// The variables it uses.
    pub fn vars(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(v) => Some(v.as_str()),
            Part::Lit(_) => None,
        })
    }

    /// Renders with `lookup`; an unknown variable renders as empty (validation rejects those).
    pub fn render<'a>(&self, lookup: impl Fn(&str) -> Option<&'a str>) -> String {
        match self.parts.as_slice() {
            [] => String::new(),
            [Part::Lit(s)] => s.clone(),
            parts => {
                let mut out = String::new();
                for p in parts {
                    match p {
                        Part::Lit(s) => out.push_str(s),
                        Part::Var(v) => out.push_str(lookup(v).unwrap_or_default()),
                    }
                }
                out
            }
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for p in &self.parts {
            match p {
                Part::Lit(s) => f.write_str(s)?,
                Part::Var(v) => write!(f, "{{{{{v}}}}}")?,
            }
        }
        Ok(())
    }
}

/// Replaces `${NAME}` (or `${NAME:-default}`, where the default may itself hold `${…}`) with
/// the environment's value; returns the names that are missing.
pub fn expand_env(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    if !text.contains("${") {
        return Ok(text.to_string());
    }
    let mut out = String::with_capacity(text.len());
    let mut missing = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("${") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        match matching_brace(after) {
            Some(close) => {
                let inner = &after[..close];
                let (name, default) = match inner.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (inner, None),
                };
                match (env(name), default) {
                    (Some(v), _) => out.push_str(&v),
                    (None, Some(d)) => match expand_env(d, env) {
                        Ok(v) => out.push_str(&v),
                        Err(m) => missing.extend(m),
                    },
                    (None, None) => missing.push(name.to_string()),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// The index of the `}` that closes a `${` whose body starts `after`, past nested `${…}`.
fn matching_brace(after: &str) -> Option<usize> {
    let b = after.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_variables() {
        let t = Template::parse("user-{{vu}}-{{ iteration }}!").unwrap();
        assert_eq!(t.vars().collect::<Vec<_>>(), ["vu", "iteration"]);
        let out = t.render(|v| match v {
            "vu" => Some("3"),
            "iteration" => Some("7"),
            _ => None,
        });
        assert_eq!(out, "user-3-7!");
        assert_eq!(t.to_string(), "user-{{vu}}-{{iteration}}!");
        assert!(Template::parse("{{oops").is_err());
        assert!(Template::parse("{{a b}}").is_err());
    }

    #[test]
    fn env_expansion_names_what_is_missing() {
        let env = |n: &str| (n == "A").then(|| "1".to_string());
        assert_eq!(expand_env("x${A}y", &env).unwrap(), "x1y");
        assert_eq!(expand_env("${B}${C}", &env).unwrap_err(), ["B", "C"]);
        assert_eq!(
            expand_env("${B:-127.0.0.1:0}", &env).unwrap(),
            "127.0.0.1:0"
        );
        // Defaults nest: the first variable that is set wins.
        assert_eq!(expand_env("${B:-${C:-${A}}}", &env).unwrap(), "1");
        assert_eq!(expand_env("${B:-${C:-x}}!", &env).unwrap(), "x!");
        assert_eq!(expand_env("${B:-${C:-${D}}}", &env).unwrap_err(), ["D"]);
        assert_eq!(expand_env("${A:-${B}}", &env).unwrap(), "1");
    }
}
