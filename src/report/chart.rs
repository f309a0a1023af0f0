//! One line chart — title, axes with units, a legend, series told apart by colour and marker,
//! optionally a logarithmic y axis — drawn with plotters into an SVG and a PNG file. Text is set
//! in DejaVu Sans, embedded in the binary (assets/fonts, Bitstream Vera licence), so no system
//! font is needed.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Once;

use anyhow::{anyhow, bail, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The embedded font.
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
/// The family name charts use.
const FAMILY: &str = "sans-serif";
/// PNG size in pixels (the SVG has the same user units).
const SIZE: (u32, u32) = (960, 600);

/// Tableau 10: distinguishable, and readable in print.
const COLOURS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One named line.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The legend entry.
    pub name: String,
    /// `(x, y)` in drawing order; points with a non-finite coordinate (or y ≤ 0 on a log
    /// axis) are left out.
    pub points: Vec<(f64, f64)>,
}

/// What to draw.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// The title above the plot.
    pub title: String,
    /// The x axis' title, with its unit.
    pub x_label: String,
    /// The y axis' title, with its unit.
    pub y_label: String,
    /// A logarithmic y axis (losses, distances).
    pub log_y: bool,
    /// The lines.
    pub series: Vec<Series>,
}

fn register_font() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FAMILY, FontStyle::Normal, FONT)
            .map_err(|_| anyhow!("the embedded chart font is not a valid font"));
    });
    result
}

impl LineChart {
    /// The series with only their drawable points.
    fn drawable(&self) -> Vec<Series> {
        self.series
            .iter()
            .map(|s| Series {
                name: s.name.clone(),
                points: s
                    .points
                    .iter()
                    .copied()
                    .filter(|(x, y)| x.is_finite() && y.is_finite() && (!self.log_y || *y > 0.0))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    }

    /// Draws the chart into `stem.svg` and `stem.png`; returns both paths. Fails when no series
    /// has a drawable point.
    pub fn draw(&self, stem: &Path) -> Result<Vec<PathBuf>> {
        register_font()?;
        let series = self.drawable();
        if series.is_empty() {
            bail!("chart `{}` has no data to draw", self.title);
        }
        let svg = stem.with_extension("svg");
        let png = stem.with_extension("png");
        self.render(SVGBackend::new(&svg, SIZE).into_drawing_area(), &series)?;
        self.render(BitMapBackend::new(&png, SIZE).into_drawing_area(), &series)?;
        Ok(vec![svg, png])
    }

    fn render<DB: DrawingBackend>(
        &self,
        root: DrawingArea<DB, Shift>,
        series: &[Series],
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let fail =
            |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing `{}`: {e:?}", self.title);
        root.fill(&WHITE).map_err(fail)?;
        let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.0));
        let ys = series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
        let x = padded(xs, false);
        let y = padded(ys, self.log_y);
        if self.log_y {
            self.plot(&root, x, y.log_scale(), series).map_err(fail)?;
        } else {
            self.plot(&root, x, y, series).map_err(fail)?;
        }
        root.present().map_err(fail)
    }

    fn plot<DB: DrawingBackend, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x: Range<f64>,
        y: Y,
        series: &[Series],
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FAMILY, 26))
            .margin(16)
            .x_label_area_size(52)
            .y_label_area_size(82)
            .build_cartesian_2d(x, y)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .axis_desc_style((FAMILY, 18))
            .label_style((FAMILY, 15))
            .light_line_style(RGBColor(235, 235, 235))
            .x_label_formatter(&|v| compact(*v))
            .draw()?;
        for (i, s) in series.iter().enumerate() {
            let colour = COLOURS[i % COLOURS.len()];
            let style = colour.stroke_width(2);
            chart
                .draw_series(LineSeries::new(s.points.iter().copied(), style))?
                .label(&s.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            // Markers tell the lines apart without colour: circle, triangle, cross, square…
            // at most ~25 per line, so dense lines stay lines.
            let every = s.points.len().div_ceil(25).max(1);
            let marks = s.points.iter().copied().step_by(every);
            match (i / COLOURS.len() + i) % 4 {
                0 => chart.draw_series(marks.map(|p| Circle::new(p, 4, colour.filled())))?,
                1 => {
                    chart.draw_series(marks.map(|p| TriangleMarker::new(p, 5, colour.filled())))?
                }
                2 => chart.draw_series(marks.map(|p| Cross::new(p, 4, colour.stroke_width(2))))?,
                _ => {
                    chart.draw_series(marks.map(|p| {
                        Rectangle::new([(p.0, p.1), (p.0, p.1)], colour.stroke_width(7))
                    }))?
                }
            };
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font((FAMILY, 15))
            .position(legend_corner(series))
            .draw()?;
        Ok(())
    }
}

/// Where the legend covers least: lower right when the lines end high (accuracy rising), upper
/// right when they end low (losses falling).
fn legend_corner(series: &[Series]) -> SeriesLabelPosition {
    let ys = || series.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let (lo, hi) = ys().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), y| {
        (l.min(y), h.max(y))
    });
    let ends: Vec<f64> = series
        .iter()
        .filter_map(|s| s.points.last().map(|p| p.1))
        .collect();
    let mean_end = ends.iter().sum::<f64>() / ends.len().max(1) as f64;
    if mean_end > (lo + hi) / 2.0 {
        SeriesLabelPosition::LowerRight
    } else {
        SeriesLabelPosition::UpperRight
    }
}

/// A tick label without a trailing `.0` on whole numbers, with thousands as `k` past 10 000.
fn compact(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 10_000.0 && v % 1000.0 == 0.0 {
        format!("{}k", v / 1000.0)
    } else if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

/// A range holding every value with a little room; on a log axis, a factor of room, and only
/// positive values.
fn padded(values: impl Iterator<Item = f64>, log: bool) -> Range<f64> {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if log {
        return (lo / 1.5)..(hi * 1.5);
    }
    if hi - lo <= f64::EPSILON * hi.abs().max(1.0) {
        return (lo - 0.5)..(hi + 0.5);
    }
    let room = (hi - lo) * 0.04;
    (lo - room)..(hi + room)
}
