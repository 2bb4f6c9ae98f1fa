//! `data:`: a CSV file or rows written inline.

use super::*;

impl Validator<'_> {
    pub(super) fn data(&mut self, node: &At<Node>) -> Option<Data> {
        if let Node::Seq(items) = &node.value {
            return self.inline_data(node, items);
        }
        let rel = self.text(node, "data")?;
        let path = self.base_dir().join(&rel);
        let text = self.files.text(&path, crate::common::MAX_DATA_BYTES);
        let mut reader = match text {
            Ok(t) => csv::ReaderBuilder::new()
                .trim(csv::Trim::All)
                .from_reader(std::io::Cursor::new(t.into_bytes())),
            Err(e) => {
                self.err(
                    node.pos,
                    "data",
                    format!("cannot read `{}`: {e}", path.display()),
                );
                return None;
            }
        };
        let columns: Vec<String> = match reader.headers() {
            Ok(h) => h.iter().map(str::to_string).collect(),
            Err(e) => {
                self.err(
                    node.pos,
                    "data",
                    format!("`{}` has no header row: {e}", path.display()),
                );
                return None;
            }
        };
        let mut rows = Vec::new();
        for (i, rec) in reader.records().enumerate() {
            match rec {
                Ok(r) => rows.push(r.iter().map(str::to_string).collect()),
                Err(e) => {
                    self.err(
                        node.pos,
                        "data",
                        format!("`{}` row {}: {e}", path.display(), i + 2),
                    );
                    return None;
                }
            }
        }
        if rows.is_empty() {
            self.err(
                node.pos,
                "data",
                format!("`{}` has no rows", path.display()),
            );
            return None;
        }
        Some(Data {
            path,
            columns,
            rows,
        })
    }

    /// `data:` written in the scenario: a list of mappings, one per row, all with the same keys.
    pub(super) fn inline_data(&mut self, node: &At<Node>, items: &[At<Node>]) -> Option<Data> {
        if items.is_empty() {
            self.err(node.pos, "data", "`data:` has no rows".into());
            return None;
        }
        let mut columns: Vec<String> = Vec::new();
        let mut rows = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("data[{i}]");
            let Some(entries) = self.map(item, &path) else {
                continue;
            };
            if i == 0 {
                columns = entries.iter().map(|(k, _)| k.value.clone()).collect();
            }
            let mut row = vec![String::new(); columns.len()];
            let mut ok = true;
            for (k, v) in entries {
                let at = format!("{path}.{}", k.value);
                match columns.iter().position(|c| *c == k.value) {
                    Some(c) => match v.value.as_text() {
                        Some(t) => row[c] = t,
                        None => {
                            let kind = v.value.kind();
                            self.err(
                                v.pos,
                                &at,
                                format!("a data value is text or a number, not {kind}"),
                            );
                            ok = false;
                        }
                    },
                    None => {
                        self.err(
                            k.pos,
                            &at,
                            format!(
                                "`{}` is not a column of the first row ({})",
                                k.value,
                                columns.join(", ")
                            ),
                        );
                        ok = false;
                    }
                }
            }
            for c in &columns {
                if !entries.iter().any(|(k, _)| k.value == *c) {
                    self.err(item.pos, &path, format!("row {} has no `{c}`", i + 1));
                    ok = false;
                }
            }
            if ok {
                rows.push(row);
            }
        }
        // Rows with errors are left out (the errors fail validation); the columns still
        // define their variables, so no error follows from another.
        (!columns.is_empty()).then(|| Data {
            path: self.file.clone(),
            columns,
            rows,
        })
    }
}
