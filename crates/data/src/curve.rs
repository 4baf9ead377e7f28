//! Training curves as a standalone SVG: one panel per quantity (loss, validation metric),
//! steps on the x axis, a line per series. Written by hand to stay dependency-free, like
//! the confusion matrix.

use std::fmt::Write;

use crate::confusion_svg::xml_escape;

const W: f64 = 640.0;
const PANEL_H: f64 = 220.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const GAP: f64 = 56.0;
const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"];

/// One line: a name for the legend and its (step, value) points.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// One panel: a y-axis label and the lines drawn on it.
#[derive(Debug, Clone)]
pub struct Panel {
    pub y_label: String,
    pub series: Vec<Series>,
}

/// Round tick positions covering `[lo, hi]`.
fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-12);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(t);
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        format!("{}", (v * 1000.0).round() / 1000.0)
    }
}

/// The SVG of `panels` stacked under `title`, sharing the step axis. Non-finite points are
/// left out; an empty panel is drawn with its axes only.
pub fn curves_svg(title: &str, panels: &[Panel]) -> String {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all_x: Vec<f64> = panels
        .iter()
        .flat_map(|p| p.series.iter().flat_map(|s| s.points.iter().filter(finite)))
        .map(|p| p.0)
        .collect();
    let (x0, x1) = match (
        all_x.iter().cloned().reduce(f64::min),
        all_x.iter().cloned().reduce(f64::max),
    ) {
        (Some(a), Some(b)) if b > a => (a, b),
        (Some(a), _) => (a - 1.0, a + 1.0),
        _ => (0.0, 1.0),
    };
    let plot_w = W - LEFT - RIGHT;
    let height = TOP + panels.len() as f64 * (PANEL_H + GAP);
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="100%" height="100%" fill="white"/><text x="{}" y="24" font-size="15" text-anchor="middle">{}</text>"#,
        W / 2.0,
        xml_escape(title)
    );
    for (k, panel) in panels.iter().enumerate() {
        let top = TOP + k as f64 * (PANEL_H + GAP);
        let ys: Vec<f64> = panel
            .series
            .iter()
            .flat_map(|s| s.points.iter().filter(finite))
            .map(|p| p.1)
            .collect();
        let (mut y0, mut y1) = (
            ys.iter().cloned().fold(f64::INFINITY, f64::min),
            ys.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        );
        if !y0.is_finite() {
            (y0, y1) = (0.0, 1.0);
        } else if y1 - y0 < 1e-12 {
            (y0, y1) = (y0 - 0.5, y1 + 0.5);
        }
        let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * plot_w;
        let py = |y: f64| top + PANEL_H - (y - y0) / (y1 - y0) * PANEL_H;
        let _ = writeln!(
            s,
            r##"<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>"##
        );
        for t in ticks(y0, y1) {
            let y = py(t);
            let _ = writeln!(
                s,
                r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT + plot_w,
                LEFT - 6.0,
                y + 4.0,
                label(t)
            );
        }
        for t in ticks(x0, x1) {
            let x = px(t);
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                top + PANEL_H + 16.0,
                label(t)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">step</text><text transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + plot_w / 2.0,
            top + PANEL_H + 34.0,
            top + PANEL_H / 2.0,
            xml_escape(&panel.y_label)
        );
        for (i, series) in panel.series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let pts: Vec<String> = series
                .points
                .iter()
                .filter(finite)
                .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
                .collect();
            if pts.len() == 1 {
                let _ = writeln!(
                    s,
                    r#"<circle cx="{}" r="3" fill="{colour}"/>"#,
                    pts[0].replace(',', "\" cy=\"")
                );
            } else if !pts.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                    pts.join(" ")
                );
            }
            let ly = top + 14.0 + i as f64 * 18.0;
            let lx = LEFT + plot_w + 12.0;
            let _ = writeln!(
                s,
                r#"<line x1="{lx}" x2="{}" y1="{ly}" y2="{ly}" stroke="{colour}" stroke-width="3"/><text x="{}" y="{}">{}</text>"#,
                lx + 18.0,
                lx + 24.0,
                ly + 4.0,
                xml_escape(&series.name)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_each_series_and_skips_non_finite_points() {
        let svg = curves_svg(
            "run <1>",
            &[
                Panel {
                    y_label: "loss".into(),
                    series: vec![
                        Series {
                            name: "train".into(),
                            points: vec![(1.0, 2.0), (2.0, f64::NAN), (3.0, 1.0)],
                        },
                        Series {
                            name: "validation".into(),
                            points: vec![(3.0, 1.5)],
                        },
                    ],
                },
                Panel {
                    y_label: "weighted F1".into(),
                    series: vec![],
                },
            ],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("run &lt;1&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<circle").count(), 1);
        assert!(!svg.contains("NaN"));
        assert_eq!(svg.matches(">validation<").count(), 1);
    }

    #[test]
    fn ticks_are_round() {
        let t = ticks(0.0, 1.0);
        assert_eq!(t.len(), 6);
        assert!((t[1] - 0.2).abs() < 1e-12 && (t[5] - 1.0).abs() < 1e-12);
        assert!(ticks(3.2, 3.2001).len() >= 2);
    }
}
