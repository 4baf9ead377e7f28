//! A confusion matrix drawn as a standalone SVG: counts in the cells, shaded by the share
//! of their true-label row, with labelled axes. Written by hand to stay dependency-free.

use std::fmt::Write;

const CELL: usize = 56;
const CHAR_W: usize = 7; // rough width of a 12px sans-serif character
const PAD: usize = 16;

/// Escapes text for SVG content and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}

/// Interpolates from a pale to a deep blue; `t` in [0, 1].
fn shade(t: f64) -> String {
    let t = t.clamp(0.0, 1.0);
    let (from, to) = ((247.0, 251.0, 255.0), (8.0, 48.0, 107.0));
    let mix = |a: f64, b: f64| (a + (b - a) * t).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        mix(from.0, to.0),
        mix(from.1, to.1),
        mix(from.2, to.2)
    )
}

/// The SVG of `matrix[true][pred]` with class `names` on both axes. Rows or names missing
/// on either side are tolerated: the picture uses the smaller size and names what it has.
pub fn confusion_svg<S: AsRef<str>>(matrix: &[Vec<usize>], names: &[S], title: &str) -> String {
    let k = matrix.len();
    let name = |i: usize| {
        names
            .get(i)
            .map(|s| s.as_ref().to_string())
            .unwrap_or_else(|| i.to_string())
    };
    let longest = (0..k).map(|i| name(i).chars().count()).max().unwrap_or(1);
    let label_w = longest * CHAR_W + 8;
    // Left: axis title + row names. Top: title. Bottom: column names (rotated) + axis title.
    let left = PAD + 20 + label_w;
    let top = PAD + 28;
    let grid = k * CELL;
    let bottom = label_w.min(160) + 36;
    let width = (left + grid + PAD).max(title.chars().count() * 8 + 2 * PAD);
    let height = top + grid + bottom;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        s,
        r#"<rect width="{width}" height="{height}" fill="white"/>"#
    );
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" font-size="14" font-weight="bold">{}</text>"#,
        PAD,
        PAD + 12,
        xml_escape(title)
    );
    for (i, row) in matrix.iter().enumerate() {
        let row_total: usize = row.iter().take(k).sum();
        let y = top + i * CELL;
        for j in 0..k {
            let count = row.get(j).copied().unwrap_or(0);
            let share = if row_total == 0 {
                0.0
            } else {
                count as f64 / row_total as f64
            };
            let x = left + j * CELL;
            let ink = if share > 0.5 { "white" } else { "black" };
            let _ = writeln!(
                s,
                r##"<rect x="{x}" y="{y}" width="{CELL}" height="{CELL}" fill="{}" stroke="#888" stroke-width="0.5"><title>true {} / predicted {}: {count}</title></rect>"##,
                shade(share),
                xml_escape(&name(i)),
                xml_escape(&name(j)),
            );
            let _ = writeln!(
                s,
                r#"<text x="{}" y="{}" text-anchor="middle" dominant-baseline="middle" fill="{ink}">{count}</text>"#,
                x + CELL / 2,
                y + CELL / 2
            );
        }
        // Row (true) names, right-aligned against the grid.
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end" dominant-baseline="middle">{}</text>"#,
            left - 6,
            y + CELL / 2,
            xml_escape(&name(i))
        );
    }
    // Column (predicted) names, rotated so long names do not collide.
    for j in 0..k {
        let x = left + j * CELL + CELL / 2;
        let y = top + grid + 8;
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{y}" text-anchor="end" dominant-baseline="middle" transform="rotate(-45 {x} {y})">{}</text>"#,
            xml_escape(&name(j))
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle" font-weight="bold">Predicted label</text>"#,
        left + grid / 2,
        height - PAD
    );
    let (ax, ay) = (PAD + 8, top + grid / 2);
    let _ = writeln!(
        s,
        r#"<text x="{ax}" y="{ay}" text-anchor="middle" font-weight="bold" transform="rotate(-90 {ax} {ay})">True label</text>"#
    );
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_has_counts_names_and_axes() {
        let svg = confusion_svg(&[vec![5, 1], vec![2, 7]], &["no", "yes <&>"], "DR \"test\"");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for needle in [
            ">5<",
            ">1<",
            ">2<",
            ">7<",
            "yes &lt;&amp;&gt;",
            "Predicted label",
            "True label",
            "DR &quot;test&quot;",
        ] {
            assert!(svg.contains(needle), "missing {needle}");
        }
    }

    #[test]
    fn empty_matrix_is_still_an_svg() {
        let svg = confusion_svg::<&str>(&[], &[], "nothing");
        assert!(svg.contains("</svg>"));
    }
}
