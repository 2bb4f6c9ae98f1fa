//! The Prometheus text exposition format (version 0.0.4), written by the simulator's
//! `/metrics` and by `hookbench run --metrics-listen`.

use std::fmt::Write;

/// The kind of a metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Quantiles of a distribution.
    Summary,
}

/// An exposition being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// An empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// A metric family: its help, its type, then one sample per (labels, value); labels are
    /// `(name, value)` pairs, escaped as the format requires.
    pub fn family<'a>(
        &mut self,
        name: &str,
        kind: Kind,
        help: &str,
        samples: impl IntoIterator<Item = (&'a [(&'a str, &'a str)], f64)>,
    ) -> &mut Self {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", help.replace('\n', " "));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            self.out.push_str(name);
            if !labels.is_empty() {
                self.out.push('{');
                for (i, (k, v)) in labels.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    let v = v
                        .replace('\\', "\\\\")
                        .replace('"', "\\\"")
                        .replace('\n', "\\n");
                    let _ = write!(self.out, "{k}=\"{v}\"");
                }
                self.out.push('}');
            }
            let _ = writeln!(self.out, " {value}");
        }
        self
    }

    /// One family with a single unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: f64) -> &mut Self {
        self.family(name, kind, help, [(&[][..], value)])
    }

    /// The text.
    pub fn finish(self) -> String {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_with_escaped_labels() {
        let mut e = Exposition::new();
        e.single("up", Kind::Gauge, "Serving.", 1.0).family(
            "requests_total",
            Kind::Counter,
            "Requests.",
            [(&[("route", "a\"b"), ("status", "200")][..], 3.0)],
        );
        assert_eq!(
            e.finish(),
            "# HELP up Serving.\n# TYPE up gauge\nup 1\n# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{route=\"a\\\"b\",status=\"200\"} 3\n"
        );
    }
}
