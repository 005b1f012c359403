//! `curves.png`: training loss (top) and relative L2 error (bottom) against step, both on a log
//! scale, drawn without text (no font dependency; the axes are step 0..E and the data range).

use plotters::prelude::*;
use std::path::Path;

fn panel(
    area: &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    pts: &[(f64, f64)],
    colour: RGBColor,
    steps: f64,
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
    let (mx, my) = (20.0, 10.0);
    let map = |s: f64, v: f64| -> (i32, i32) {
        let x = mx + (s / steps.max(1.0)) * (w as f64 - 2.0 * mx);
        let y = my + (1.0 - (v - lo) / span) * (h as f64 - 2.0 * my);
        (x as i32, y as i32)
    };
    // axes and one gridline per decade
    let axis = ShapeStyle::from(&BLACK).stroke_width(1);
    area.draw(&PathElement::new(
        vec![
            (mx as i32, my as i32),
            (mx as i32, h as i32 - my as i32),
            (w as i32 - mx as i32, h as i32 - my as i32),
        ],
        axis,
    ))
    .map_err(e)?;
    let mut dec = lo.ceil();
    while dec <= hi {
        let (_, y) = map(0.0, dec);
        area.draw(&PathElement::new(
            vec![(mx as i32, y), (w as i32 - mx as i32, y)],
            ShapeStyle::from(&RGBColor(220, 220, 220)),
        ))
        .map_err(e)?;
        dec += 1.0;
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
    }
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
        panel(&top, &loss, RGBColor(31, 119, 180), steps)?;
        panel(&bottom, &err, RGBColor(214, 39, 40), steps)?;
        root.present().map_err(|e| e.to_string())?;
    }
    std::fs::rename(&tmp, out).map_err(|e| e.to_string())
}
