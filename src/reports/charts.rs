//! Inline SVG charts for the HTML report: no scripts, no network, readable when printed.

use std::fmt::Write;

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend.
    pub name: String,
    /// CSS colour.
    pub color: &'static str,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// A horizontal reference line (e.g. the 15 s budget).
#[derive(Debug, Clone)]
pub struct HLine {
    /// Where.
    pub y: f64,
    /// Label.
    pub label: String,
}

const W: f64 = 760.0;
const H: f64 = 260.0;
const L: f64 = 64.0;
const R: f64 = 16.0;
const T: f64 = 16.0;
const B: f64 = 40.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice(v: f64) -> String {
    if v.abs() >= 10.0 {
        format!("{:.0}", v)
    } else if v.abs() >= 1.0 {
        format!("{:.1}", v)
    } else {
        format!("{:.2}", v)
    }
}

/// A line chart.
pub fn line(
    series: &[Series],
    x_label: &str,
    y_label: &str,
    hline: Option<&HLine>,
    x_log_percentile: bool,
) -> String {
    let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
    let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (x0, x1) = xs.fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(x), b.max(x)));
    let data_max = ys.fold(0.0f64, f64::max);
    // The axis scales to the data; a reference line far above it (say a 15 s budget over
    // sub-millisecond turns) is named in a note instead of flattening the data to zero.
    let hline_on_scale = hline.filter(|h| h.y <= data_max * 4.0 || data_max <= 0.0);
    let top = hline_on_scale.map_or(data_max, |h| data_max.max(h.y));
    // Headroom keeps the legend (top left) clear of a reference line at the top.
    let y1 = top.max(1e-9) * if hline_on_scale.is_some() { 1.25 } else { 1.08 };
    let (x0, x1) = if x0 >= x1 {
        (x0.min(0.0), x0.max(0.0) + 1.0)
    } else {
        (x0, x1)
    };
    let px = |x: f64| L + (x - x0) / (x1 - x0) * (W - L - R);
    let py = |y: f64| T + (1.0 - y / y1) * (H - T - B);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {W} {H}" role="img" class="chart"><rect x="{L}" y="{T}" width="{}" height="{}" class="plot"/>"#,
        W - L - R,
        H - T - B
    );
    for i in 0..=4 {
        let y = y1 * f64::from(i) / 4.0;
        let _ = write!(
            svg,
            r#"<line x1="{L}" x2="{}" y1="{py}" y2="{py}" class="grid"/><text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            W - R,
            L - 6.0,
            py(y) + 4.0,
            nice(y),
            py = py(y)
        );
    }
    if x_log_percentile {
        // x counts "nines": 0 → 0%, 1 → 90%, 2 → 99%, 3 → 99.9%, 4 → 99.99%.
        for (x, label) in [
            (0.0, "0%"),
            (1.0, "90%"),
            (2.0, "99%"),
            (3.0, "99.9%"),
            (4.0, "99.99%"),
        ] {
            if x <= x1 + 1e-9 {
                // The last label would run off the plot's right edge if centred.
                let anchor = if x + 1.0 > x1 { "end" } else { "middle" };
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" class="tick" text-anchor="{anchor}">{label}</text>"#,
                    px(x),
                    H - B + 16.0
                );
            }
        }
    } else {
        for i in 0..=5 {
            let x = x0 + (x1 - x0) * f64::from(i) / 5.0;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                px(x),
                H - B + 16.0,
                nice(x)
            );
        }
    }
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" class="axis" text-anchor="middle">{}</text>"#,
        (L + W - R) / 2.0,
        H - 6.0,
        esc(x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="14" y="{}" class="axis" text-anchor="middle" transform="rotate(-90 14 {})">{}</text>"#,
        (T + H - B) / 2.0,
        (T + H - B) / 2.0,
        esc(y_label)
    );
    if let Some(h) = hline.filter(|_| hline_on_scale.is_none()) {
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="budget-label" text-anchor="end">{} (off the scale: far above every value)</text>"#,
            W - R - 4.0,
            T + 15.0,
            esc(&h.label)
        );
    }
    if let Some(h) = hline_on_scale {
        let y = py(h.y);
        let _ = write!(
            svg,
            r##"<line x1="{L}" x2="{}" y1="{y}" y2="{y}" class="budget"/><text x="{}" y="{}" class="budget-label" text-anchor="end">{}</text>"##,
            W - R,
            W - R - 4.0,
            y - 4.0,
            esc(&h.label)
        );
    }
    for s in series {
        if s.points.is_empty() {
            continue;
        }
        let d: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
            d.join(" "),
            s.color
        );
    }
    let mut lx = L + 8.0;
    for s in series {
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="10" height="10" fill="{}"/><text x="{}" y="{}" class="legend">{}</text>"#,
            T + 6.0,
            s.color,
            lx + 14.0,
            T + 15.0,
            esc(&s.name)
        );
        lx += 24.0 + 7.0 * s.name.len() as f64;
    }
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars (label, value).
pub fn bars(items: &[(String, f64)], color: &'static str, unit: &str) -> String {
    if items.is_empty() {
        return r#"<p class="empty">none</p>"#.into();
    }
    let row = 26.0;
    let h = row * items.len() as f64 + 8.0;
    let label_w = 300.0;
    let max = items.iter().map(|i| i.1).fold(0.0, f64::max).max(1e-9);
    let mut svg = format!(r#"<svg viewBox="0 0 {W} {h}" role="img" class="chart">"#);
    for (i, (label, v)) in items.iter().enumerate() {
        let y = 4.0 + row * i as f64;
        let w = (W - label_w - 90.0) * v / max;
        let shown: String = label.chars().take(44).collect();
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text><rect x="{label_w}" y="{y}" width="{w:.1}" height="{}" fill="{color}"/><text x="{}" y="{}" class="tick">{} {}</text>"#,
            label_w - 8.0,
            y + 15.0,
            esc(&shown),
            row - 8.0,
            label_w + w + 6.0,
            y + 15.0,
            nice(*v),
            esc(unit)
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ys(svg: &str) -> Vec<f64> {
        let at = svg.find("<polyline points=\"").unwrap() + 18;
        let end = at + svg[at..].find('"').unwrap();
        svg[at..end]
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    }

    fn series(values: &[f64]) -> Vec<Series> {
        vec![Series {
            name: "turn latency".into(),
            color: "#000",
            points: values
                .iter()
                .enumerate()
                .map(|(i, v)| (i as f64, *v))
                .collect(),
        }]
    }

    #[test]
    fn small_values_are_not_flattened_by_a_far_reference_line() {
        let budget = HLine {
            y: 15.0,
            label: "15 s sync budget".into(),
        };
        let svg = line(
            &series(&[0.0002, 0.0004, 0.0008]),
            "x",
            "s",
            Some(&budget),
            false,
        );
        let y = ys(&svg);
        // The curve spans most of the plot's height, not a flat line at zero.
        assert!(y[0] - y[2] > (H - T - B) * 0.5, "{y:?}");
        assert!(
            !svg.contains(r#"class="budget""#),
            "no line far off the scale"
        );
        assert!(svg.contains("15 s sync budget (off the scale"), "{svg}");
    }

    #[test]
    fn a_reference_line_in_range_is_drawn_below_the_legend() {
        let budget = HLine {
            y: 15.0,
            label: "15 s sync budget".into(),
        };
        let svg = line(&series(&[2.0, 9.0, 15.0]), "x", "s", Some(&budget), false);
        let at = svg.find(r#"class="budget""#).unwrap();
        let y1: f64 = svg[..at]
            .rsplit("y1=\"")
            .next()
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        // The legend's text sits at T + 15; the line and its label (4 px above) clear it.
        assert!(y1 - 4.0 - 11.0 > T + 15.0, "budget line at {y1}");
    }
}
