//! PNG charts of the results, drawn with plotters' bitmap backend.
//!
//! - `docs/perf/throughput.png`: requests/s per endpoint and scheme, one bar per system, log
//!   scale; what a system cannot do is marked `n/a` where its bar would be.
//! - `docs/perf/scale.png`: create latency and `/cluster/resources` latency against the guest
//!   count, ours and fakepve, log-log.
//!
//! plotters' bitmap backend draws text only with a font: the `ab_glyph` feature renders a font
//! registered at run time, here DejaVu Sans from Debian's `fonts-dejavu-core` (installed with
//! apt-get when missing), so nothing depends on fontconfig.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow};
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::results::{MockResults, Outcome, ScaleResults, endpoint_rows, thousands};
use crate::systems::SystemKind;

/// Where Debian puts DejaVu Sans.
const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// The family name the charts use.
const FONT: &str = "sans-serif";

/// Colours per system.
fn colour(kind: SystemKind) -> RGBColor {
    match kind {
        SystemKind::Ours => RGBColor(0xd9, 0x5f, 0x02),
        SystemKind::Fakepve => RGBColor(0x1b, 0x9e, 0x77),
        SystemKind::ProxmoxSdkMock => RGBColor(0x75, 0x70, 0xb3),
        SystemKind::BareAxum => RGBColor(0x66, 0x66, 0x66),
        SystemKind::Baseline => RGBColor(0xe6, 0xab, 0x02),
    }
}

/// Registers DejaVu Sans as [`FONT`], installing `fonts-dejavu-core` first when it is missing.
pub fn register_font() -> anyhow::Result<()> {
    if !Path::new(FONT_PATH).exists() {
        eprintln!("installing fonts-dejavu-core for the chart labels");
        let status = Command::new("apt-get")
            .args(["install", "-y", "fonts-dejavu-core"])
            .status()
            .context("running apt-get install fonts-dejavu-core")?;
        anyhow::ensure!(status.success(), "apt-get install fonts-dejavu-core failed");
    }
    let bytes = std::fs::read(FONT_PATH).with_context(|| format!("reading {FONT_PATH}"))?;
    // plotters keeps registered fonts for the life of the process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FONT, FontStyle::Normal, bytes)
        .map_err(|_| anyhow!("{FONT_PATH} is not a usable font"))
}

/// Draws `throughput.png` into `dir`; returns its path.
pub fn throughput(mock: &MockResults, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("throughput.png");
    let rows = endpoint_rows(mock);
    let systems: Vec<_> = crate::results::MOCK_SYSTEMS
        .iter()
        .filter_map(|kind| mock.systems.iter().find(|s| s.system == *kind))
        .collect();
    let rates: Vec<f64> = systems
        .iter()
        .flat_map(|s| s.endpoints.iter())
        .filter_map(|e| e.outcome.load().map(|l| l.rps))
        .filter(|rps| *rps > 0.0)
        .collect();
    let max_rate = rates.iter().copied().fold(1.0, f64::max);
    let min_rate = rates.iter().copied().fold(max_rate, f64::min);
    let y_top = 10f64.powf((max_rate * 2.0).log10().ceil());
    let y_bottom = 10f64.powf((min_rate / 2.0).log10().floor()).max(1.0);

    let root = BitMapBackend::new(&path, (1600, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let n_groups = rows.len();
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "Mock servers: requests/s per endpoint ({} keep-alive connections, {} s, log scale)",
                mock.connections, mock.duration_s
            ),
            (FONT, 26),
        )
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(100)
        .build_cartesian_2d(-0.5f64..(n_groups as f64 - 0.5), (y_bottom..y_top).log_scale())?;
    let labels: Vec<String> = rows
        .iter()
        .map(|(endpoint, scheme)| format!("{} {scheme}", short_endpoint(endpoint)))
        .collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n_groups)
        .x_label_formatter(&|x| {
            let index = x.round();
            if (x - index).abs() < 1e-6 && index >= 0.0 {
                labels.get(index as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("requests/s (2xx)")
        .y_label_formatter(&|y| thousands(*y))
        .label_style((FONT, 16))
        .axis_desc_style((FONT, 18))
        .draw()?;
    let n_systems = systems.len().max(1) as f64;
    let slot = 0.8 / n_systems;
    for (system_index, system) in systems.iter().enumerate() {
        let fill = colour(system.system);
        let mut bars = Vec::new();
        let mut notes = Vec::new();
        for (group_index, (endpoint, scheme)) in rows.iter().enumerate() {
            let left = group_index as f64 - 0.4 + slot * system_index as f64;
            let right = left + slot * 0.92;
            let Some(result) = system
                .endpoints
                .iter()
                .find(|e| &e.endpoint == endpoint && &e.scheme == scheme)
            else {
                continue;
            };
            match &result.outcome {
                Outcome::Measured { load } if load.rps > 0.0 => {
                    bars.push(Rectangle::new(
                        [(left, y_bottom), (right, load.rps)],
                        fill.filled(),
                    ));
                    notes.push(((left + right) / 2.0, load.rps * 1.08, compact(load.rps)));
                }
                Outcome::Measured { .. } | Outcome::Failed { .. } => {
                    notes.push(((left + right) / 2.0, y_bottom * 1.15, "failed".to_owned()));
                }
                Outcome::Unsupported { .. } => {
                    notes.push(((left + right) / 2.0, y_bottom * 1.15, "n/a".to_owned()));
                }
            }
        }
        chart
            .draw_series(bars)?
            .label(system.system.label())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], fill.filled()));
        let note_style = TextStyle::from((FONT, 13).into_font()).color(&BLACK).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Bottom,
            ),
        );
        chart.draw_series(
            notes
                .into_iter()
                .map(|(x, y, text)| Text::new(text, (x, y), note_style.clone())),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 16))
        .draw()?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.clone())
}

/// Draws `scale.png` into `dir`; returns its path.
pub fn scale(scale: &ScaleResults, dir: &Path) -> anyhow::Result<PathBuf> {
    let path = dir.join("scale.png");
    let root = BitMapBackend::new(&path, (1600, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(
        &format!(
            "Scale: sequential requests over HTTPS against the number of guests ({} creates, {} reads per point)",
            scale.creates_per_point, scale.resource_gets_per_point
        ),
        (FONT, 24),
    )?;
    let (left, right) = root.split_horizontally(800);
    draw_scale_panel(&left, scale, "create a VM: median latency (ms)", |point| {
        point
            .create
            .as_ref()
            .and_then(|c| c.latency)
            .map(|l| l.p50_ms)
    })?;
    draw_scale_panel(
        &right,
        scale,
        "GET /cluster/resources: median latency (ms)",
        |point| {
            point
                .resources
                .as_ref()
                .and_then(|c| c.latency)
                .map(|l| l.p50_ms)
        },
    )?;
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path.clone())
}

fn draw_scale_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    scale: &ScaleResults,
    title: &str,
    pick: fn(&crate::results::ScalePoint) -> Option<f64>,
) -> anyhow::Result<()> {
    let values: Vec<f64> = scale.points.iter().filter_map(pick).collect();
    let max_value = values.iter().copied().fold(0.001, f64::max);
    let min_value = values.iter().copied().fold(max_value, f64::min);
    let y_top = 10f64.powf((max_value * 2.0).log10().ceil());
    let y_bottom = 10f64.powf((min_value / 2.0).log10().floor());
    let max_guests = scale
        .points
        .iter()
        .map(|p| p.guests)
        .max()
        .unwrap_or(10_000) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(
            (50f64..max_guests * 2.0).log_scale(),
            (y_bottom..y_top).log_scale(),
        )?;
    chart
        .configure_mesh()
        .x_desc("guests")
        .y_desc("ms")
        .x_label_formatter(&|x| thousands(*x))
        .y_label_formatter(&|y| format!("{y}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()?;
    for kind in [SystemKind::Ours, SystemKind::Fakepve] {
        let series: Vec<(f64, f64)> = scale
            .points
            .iter()
            .filter(|p| p.system == kind)
            .filter_map(|p| pick(p).map(|value| (p.guests as f64, value)))
            .collect();
        let stroke = colour(kind);
        chart
            .draw_series(LineSeries::new(series.clone(), stroke.stroke_width(3)))?
            .label(kind.label())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], stroke.stroke_width(3))
            });
        chart.draw_series(
            series
                .iter()
                .map(|&(x, y)| Circle::new((x, y), 5, stroke.filled())),
        )?;
        let note_style = TextStyle::from((FONT, 13).into_font()).color(&BLACK);
        chart.draw_series(series.iter().map(|&(x, y)| {
            Text::new(format!("{y:.2}"), (x * 1.08, y * 1.05), note_style.clone())
        }))?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font((FONT, 15))
        .draw()?;
    Ok(())
}

fn short_endpoint(endpoint: &str) -> String {
    match endpoint {
        "POST /nodes/pve1/qemu" => "create".to_owned(),
        other => other.trim_start_matches("GET ").to_owned(),
    }
}

/// `52.3k`, `812`.
fn compact(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.0}k", value / 1000.0)
    } else if value >= 1000.0 {
        format!("{:.1}k", value / 1000.0)
    } else {
        format!("{value:.0}")
    }
}
