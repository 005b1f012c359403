//! `curves.png`: training loss (top) and relative L2 error (bottom) against step, both on a log
//! scale with a gridline and label per decade. Text comes from a built-in 5×7 pixel font (digits
//! and the few letters the labels use), so no font files or font crates are needed.

use plotters::prelude::*;
use std::path::Path;

/// 5×7 glyphs, one row per byte (bit 4 = leftmost pixel).
fn glyph(c: char) -> [u8; 7] {
    match c {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'e' => [0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E],
        '-' => [0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00],
        '.' => [0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C],
        's' => [0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E],
        't' => [0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06],
        'p' => [0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10],
        'l' => [0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'o' => [0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E],
        'r' => [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        _ => [0; 7],
    }
}

/// Pixels per glyph column including the gap, at scale 1.
const ADVANCE: i32 = 6;

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale × scale`.
fn text(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    text: &str,
    (x, y): (i32, i32),
    scale: i32,
) -> Result<(), String> {
    for (i, c) in text.chars().enumerate() {
        for (row, bits) in glyph(c).iter().enumerate() {
            for col in 0..5 {
                if bits & (0x10 >> col) != 0 {
                    let px = x + (i as i32 * ADVANCE + col) * scale;
                    let py = y + row as i32 * scale;
                    area.draw(&Rectangle::new(
                        [(px, py), (px + scale - 1, py + scale - 1)],
                        BLACK.filled(),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
        }
    }
    Ok(())
}

/// `10^k` as a label: `1e-3`, `1`, `1e4`.
fn decade_label(k: i32) -> String {
    if k == 0 { "1".into() } else { format!("1e{k}") }
}

/// The y-axis gridlines of a log panel over `[lo, hi]` (`log10` of the values): one per decade
/// where at least two decades fall inside, otherwise the bottom, middle and top of the range with
/// their values (`2.3e-4`), so that a curve spanning less than a decade keeps labelled axes.
fn y_labels(lo: f64, hi: f64) -> Vec<(f64, String)> {
    let decades: Vec<f64> = (lo.ceil() as i64..=hi.floor() as i64).map(|k| k as f64).collect();
    if decades.len() >= 2 {
        return decades.into_iter().map(|k| (k, decade_label(k as i32))).collect();
    }
    let points = if hi - lo < 1e-6 {
        vec![lo]
    } else {
        vec![lo, 0.5 * (lo + hi), hi]
    };
    points
        .into_iter()
        .map(|v| (v, format!("{:.1e}", 10f64.powf(v))))
        .collect()
}

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    pts: &[(f64, f64)],
    colour: RGBColor,
    steps: f64,
    title: &str,
) -> Result<(), String> {
    let (w, h) = area.dim_in_pixel();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    area.fill(&WHITE).map_err(e)?;
    let vals: Vec<(f64, f64)> = pts
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .map(|(s, v)| (*s, v.log10()))
        .collect();
    if vals.is_empty() {
        return Ok(());
    }
    let (lo, hi) = vals.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), (_, v)| {
        (a.min(*v), b.max(*v))
    });
    let span = (hi - lo).max(1e-9);
    // left margin for the y labels, bottom margin for step labels, top margin for the title
    let labels = y_labels(lo, hi);
    let longest = labels.iter().map(|(_, l)| l.len()).max().unwrap_or(0) as f64;
    let (ml, mr, mt, mb) = ((longest * (ADVANCE * 2) as f64 + 14.0).max(70.0), 20.0, 28.0, 26.0);
    let map = |s: f64, v: f64| -> (i32, i32) {
        let x = ml + (s / steps.max(1.0)) * (w as f64 - ml - mr);
        let y = mt + (1.0 - (v - lo) / span) * (h as f64 - mt - mb);
        (x as i32, y as i32)
    };
    let (x0, x1, y0, y1) = (ml as i32, w as i32 - mr as i32, mt as i32, h as i32 - mb as i32);
    text(area, title, (x0, 6), 2)?;
    for frac in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let s = (steps * frac).round();
        let (x, _) = map(s, lo);
        let label = format!("{s}");
        let width = label.len() as i32 * ADVANCE * 2;
        let left = (x - width / 2).clamp(0, w as i32 - width);
        text(area, &label, (left, y1 + 6), 2)?;
        area.draw(&PathElement::new(vec![(x, y1), (x, y1 + 4)], ShapeStyle::from(&BLACK)))
            .map_err(e)?;
    }
    // axes and one gridline per decade
    let axis = ShapeStyle::from(&BLACK).stroke_width(1);
    area.draw(&PathElement::new(vec![(x0, y0), (x0, y1), (x1, y1)], axis))
        .map_err(e)?;
    for (v, label) in labels {
        let (_, y) = map(0.0, v);
        area.draw(&PathElement::new(
            vec![(x0, y), (x1, y)],
            ShapeStyle::from(&RGBColor(220, 220, 220)),
        ))
        .map_err(e)?;
        text(area, &label, (x0 - 6 - label.len() as i32 * ADVANCE * 2, y - 7), 2)?;
    }
    let line: Vec<(i32, i32)> = vals.iter().map(|(s, v)| map(*s, *v)).collect();
    area.draw(&PathElement::new(line, ShapeStyle::from(&colour).stroke_width(2)))
        .map_err(e)?;
    Ok(())
}

/// Reads `metrics.csv` and draws the two panels into `out`.
pub fn curves(metrics: &Path, out: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(metrics).map_err(|e| e.to_string())?;
    let mut loss = Vec::new();
    let mut err = Vec::new();
    let mut err_l1 = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 4 {
            continue;
        }
        let step: f64 = f[0].parse().unwrap_or(0.0);
        if let Ok(v) = f[1].parse::<f64>() {
            loss.push((step, v));
        }
        if let Ok(v) = f[3].parse::<f64>() {
            err.push((step, v));
        }
        if let Some(Ok(v)) = f.get(4).map(|v| v.parse::<f64>()) {
            err_l1.push((step, v));
        }
    }
    // point evaluations (parabolic problems) have no L2 error: show the relative L1 of u(0, 0)
    let (err, err_name) = if err.is_empty() && !err_l1.is_empty() {
        (err_l1, "rel L1")
    } else {
        (err, "rel L2")
    };
    let steps = loss.last().map_or(1.0, |p| p.0);
    // thin the loss curve to at most 2000 points (moving average per bucket)
    let bucket = (loss.len() / 2000).max(1);
    let loss: Vec<(f64, f64)> = loss
        .chunks(bucket)
        .map(|c| (c[c.len() - 1].0, c.iter().map(|p| p.1).sum::<f64>() / c.len() as f64))
        .collect();
    let tmp = out.with_extension("tmp.png");
    {
        let root = BitMapBackend::new(&tmp, (900, 600)).into_drawing_area();
        let (top, bottom) = root.split_vertically(300);
        panel(&top, &loss, RGBColor(31, 119, 180), steps, "loss")?;
        panel(&bottom, &err, RGBColor(214, 39, 40), steps, err_name)?;
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, out).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_axis_is_labelled_whatever_its_span() {
        // several decades: one label per decade
        let labels = y_labels(-3.2, 0.4);
        let names: Vec<&str> = labels.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(names, ["1e-3", "1e-2", "1e-1", "1"]);
        // less than a decade (2e-4 .. 7e-4): the range's ends and middle, with values
        let labels = y_labels(2e-4f64.log10(), 7e-4f64.log10());
        let names: Vec<&str> = labels.iter().map(|(_, l)| l.as_str()).collect();
        assert_eq!(names, ["2.0e-4", "3.7e-4", "7.0e-4"]);
        // one decade line inside is not enough to read the scale
        assert_eq!(y_labels(-0.5, 0.3).len(), 3);
        // a flat curve: one label
        assert_eq!(y_labels(-2.0, -2.0), vec![(-2.0, "1.0e-2".to_string())]);
        // every label character has a glyph
        for (_, l) in y_labels(-7.3, -6.9) {
            assert!(l.chars().all(|c| glyph(c) != [0; 7]), "{l}");
        }
    }
}
