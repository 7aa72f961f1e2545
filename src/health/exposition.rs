//! The Prometheus text exposition format (version 0.0.4), written from
//! the stages' snapshots at scrape time.
//!
//! The gateway's counters already live in the snapshots its stages
//! publish; a metrics registry would keep a second copy of each one,
//! updated from every stage. Writing the format is a screenful (families
//! with `# HELP` and `# TYPE`, samples with escaped label values), so it
//! is done here, and `tests/health.rs` checks the output with the
//! Prometheus project's own Python parser.

use std::fmt::Write;

/// The content type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A metric family's type.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Only goes up (restarts from zero with the process).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A page of metrics being written.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

impl Exposition {
    /// Start a family: its help line and type. Counters' names end in
    /// `_total`, by convention.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
        Family {
            out: &mut self.out,
            name,
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

/// One family's samples.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Family<'_> {
    /// A sample without labels.
    pub fn value(&mut self, value: impl Into<Sample>) -> &mut Self {
        self.sample(&[], value)
    }

    /// A sample with labels (names are the gateway's own, values are
    /// escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Sample>) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{name}=\"{}\"", escape_label(value));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", value.into());
        self
    }
}

/// A sample's value: integers exactly, floats as Prometheus spells them.
#[derive(Debug, Clone, Copy)]
pub enum Sample {
    /// An integer.
    Int(i128),
    /// A float.
    Float(f64),
}

impl From<u64> for Sample {
    fn from(v: u64) -> Sample {
        Sample::Int(v.into())
    }
}

impl From<i64> for Sample {
    fn from(v: i64) -> Sample {
        Sample::Int(v.into())
    }
}

impl From<usize> for Sample {
    fn from(v: usize) -> Sample {
        Sample::Int(v as i128)
    }
}

impl From<bool> for Sample {
    fn from(v: bool) -> Sample {
        Sample::Int(v.into())
    }
}

impl From<f64> for Sample {
    fn from(v: f64) -> Sample {
        Sample::Float(v)
    }
}

impl std::fmt::Display for Sample {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            Sample::Int(v) => write!(f, "{v}"),
            Sample::Float(v) if v.is_nan() => f.write_str("NaN"),
            Sample::Float(v) if v.is_infinite() => {
                f.write_str(if v > 0.0 { "+Inf" } else { "-Inf" })
            }
            Sample::Float(v) => write!(f, "{v}"),
        }
    }
}

/// Label values escape backslash, double quote and line feed.
fn escape_label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// Help text escapes backslash and line feed.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_samples_and_escapes_are_written_as_the_format_says() {
        let mut page = Exposition::default();
        page.family("x_total", Kind::Counter, "Things.\nCounted \\ here.")
            .sample(&[("device", "a\"b\\c\nd")], 3u64)
            .value(4u64);
        page.family("y", Kind::Gauge, "A gauge.")
            .value(f64::NAN)
            .value(f64::INFINITY)
            .value(-1.5);
        assert_eq!(
            page.finish(),
            "# HELP x_total Things.\\nCounted \\\\ here.\n# TYPE x_total counter\n\
             x_total{device=\"a\\\"b\\\\c\\nd\"} 3\nx_total 4\n\
             # HELP y A gauge.\n# TYPE y gauge\ny NaN\ny +Inf\ny -1.5\n"
        );
    }
}
