//! `plot`: a results TSV to an SVG with two panels side by side, CPU per
//! call and p50/p99 latency against offered rate, one colour and marker
//! per proxy. Hand-written SVG text: axes with ticks, a legend, a title.

use std::fmt::Write;

/// The columns `plot` reads; others are ignored.
pub const NEEDED: &[&str] = &[
    "proxy",
    "offered_cps",
    "cpu_us_per_call",
    "p50_us",
    "p99_us",
];

/// One row: values that were `-` (or not numbers) are None.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub offered: f64,
    pub cpu_us: Option<f64>,
    pub p50_us: Option<f64>,
    pub p99_us: Option<f64>,
}

/// Every row of one proxy, by offered rate.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub proxy: String,
    pub points: Vec<Point>,
}

/// Read a results TSV: a header line naming the columns, then rows. Rows
/// without a numeric offered rate are skipped, and so are single values
/// that are `-`; blank lines and `#` comments too. Series come in the
/// order their proxy first appears, points sorted by offered rate.
pub fn parse_tsv(text: &str) -> Result<Vec<Series>, String> {
    let mut lines = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'));
    let header: Vec<&str> = lines
        .next()
        .ok_or("the TSV is empty")?
        .split('\t')
        .map(str::trim)
        .collect();
    let col = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| format!("the TSV has no {name} column"))
    };
    let cols: Vec<usize> = NEEDED.iter().map(|n| col(n)).collect::<Result<_, _>>()?;
    let mut out: Vec<Series> = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split('\t').map(str::trim).collect();
        let num = |k: usize| -> Option<f64> {
            f.get(cols[k])
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| v.is_finite())
        };
        let (Some(proxy), Some(offered)) = (f.get(cols[0]), num(1)) else {
            continue;
        };
        if proxy.is_empty() || *proxy == "-" {
            continue;
        }
        let p = Point {
            offered,
            cpu_us: num(2),
            p50_us: num(3),
            p99_us: num(4),
        };
        if p.cpu_us.is_none() && p.p50_us.is_none() && p.p99_us.is_none() {
            continue;
        }
        match out.iter_mut().find(|s| s.proxy == *proxy) {
            Some(s) => s.points.push(p),
            None => out.push(Series {
                proxy: proxy.to_string(),
                points: vec![p],
            }),
        }
    }
    for s in &mut out {
        s.points.sort_by(|a, b| a.offered.total_cmp(&b.offered));
    }
    Ok(out)
}

/// `plot --input --output [--title]`.
pub fn run(
    input: &std::path::Path,
    output: &std::path::Path,
    title: Option<&str>,
) -> Result<usize, String> {
    let text = std::fs::read_to_string(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let series = parse_tsv(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    if series.is_empty() {
        return Err(format!("{}: no rows to plot", input.display()));
    }
    let svg = svg(&series, title.unwrap_or(DEFAULT_TITLE));
    std::fs::write(output, svg).map_err(|e| format!("{}: {e}", output.display()))?;
    Ok(series.iter().map(|s| s.points.len()).sum())
}

pub const DEFAULT_TITLE: &str = "Stateless proxy: CPU per call and latency against offered load";

const W: f64 = 1000.0;
const H: f64 = 500.0;
/// Plot areas: left edges of the two panels, their width, top and bottom.
const LEFTS: [f64; 2] = [80.0, 580.0];
const PW: f64 = 380.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 390.0;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
];

/// How values map onto an axis.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear {
        max: f64,
    },
    /// log10, from 10^lo to 10^hi.
    Log {
        lo: i32,
        hi: i32,
    },
}

impl Scale {
    /// Position of `v` in 0..=1.
    pub fn frac(self, v: f64) -> f64 {
        match self {
            Scale::Linear { max } => (v / max).clamp(0.0, 1.0),
            Scale::Log { lo, hi } => {
                ((v.max(1e-9).log10() - lo as f64) / (hi - lo) as f64).clamp(0.0, 1.0)
            }
        }
    }

    pub fn ticks(self) -> Vec<f64> {
        match self {
            Scale::Linear { max } => nice_ticks(max).1,
            Scale::Log { lo, hi } => (lo..=hi).map(|e| 10f64.powi(e)).collect(),
        }
    }

    /// Linear from 0, or log when the values span more than 20x.
    pub fn for_values(values: &[f64], allow_log: bool) -> Scale {
        let max = values.iter().copied().fold(0.0, f64::max);
        let min = values
            .iter()
            .copied()
            .filter(|v| *v > 0.0)
            .fold(f64::INFINITY, f64::min);
        if allow_log && min.is_finite() && max / min > 20.0 {
            Scale::Log {
                lo: min.log10().floor() as i32,
                hi: (max.log10().ceil() as i32).max(min.log10().floor() as i32 + 1),
            }
        } else {
            Scale::Linear {
                max: nice_ticks(max).0,
            }
        }
    }
}

/// A round top above `max` and ticks from 0 to it, 1-2-5 steps, 4 to 10 of them.
pub fn nice_ticks(max: f64) -> (f64, Vec<f64>) {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step - 1e-9).ceil().max(1.0) as usize;
    let ticks = (0..=n).map(|i| i as f64 * step).collect();
    (n as f64 * step, ticks)
}

/// A tick label: 1k for thousands, M for millions, at most 2 decimals.
pub fn label(v: f64) -> String {
    let (v, unit) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let mut s = format!("{v:.2}");
    while s.contains('.') && (s.ends_with('0') || s.ends_with('.')) {
        s.pop();
    }
    s + unit
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Marker `k` (circle, square, triangle, diamond, ...) at (x, y).
fn marker(out: &mut String, k: usize, x: f64, y: f64, colour: &str) {
    let _ = match k % 4 {
        0 => write!(
            out,
            r#"<circle cx="{x:.1}" cy="{y:.1}" r="4" fill="{colour}"/>"#
        ),
        1 => write!(
            out,
            r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="{colour}"/>"#,
            x - 4.0,
            y - 4.0
        ),
        2 => write!(
            out,
            r#"<polygon points="{x:.1},{:.1} {:.1},{:.1} {:.1},{:.1}" fill="{colour}"/>"#,
            y - 5.0,
            x - 5.0,
            y + 4.0,
            x + 5.0,
            y + 4.0
        ),
        _ => write!(
            out,
            r#"<polygon points="{x:.1},{:.1} {:.1},{y:.1} {x:.1},{:.1} {:.1},{y:.1}" fill="{colour}"/>"#,
            y - 5.0,
            x + 5.0,
            y + 5.0,
            x - 5.0
        ),
    };
}

struct Panel<'a> {
    left: f64,
    x: Scale,
    y: Scale,
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
}

impl Panel<'_> {
    fn px(&self, v: f64) -> f64 {
        self.left + self.x.frac(v) * PW
    }

    fn py(&self, v: f64) -> f64 {
        BOTTOM - self.y.frac(v) * (BOTTOM - TOP)
    }

    fn axes(&self, out: &mut String) {
        let (l, r) = (self.left, self.left + PW);
        let _ = write!(
            out,
            r##"<g class="axes"><rect x="{l}" y="{TOP}" width="{PW}" height="{}" fill="none" stroke="#444"/>"##,
            BOTTOM - TOP
        );
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-weight="bold">{}</text>"#,
            l + PW / 2.0,
            TOP - 12.0,
            esc(self.title)
        );
        for t in self.x.ticks() {
            let x = self.px(t);
            let _ = write!(
                out,
                r##"<line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{TOP}" stroke="#ddd"/><line x1="{x:.1}" y1="{BOTTOM}" x2="{x:.1}" y2="{:.1}" stroke="#444"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
                BOTTOM + 5.0,
                BOTTOM + 20.0,
                label(t)
            );
        }
        for t in self.y.ticks() {
            let y = self.py(t);
            let _ = write!(
                out,
                r##"<line x1="{l}" y1="{y:.1}" x2="{r}" y2="{y:.1}" stroke="#ddd"/><line x1="{:.1}" y1="{y:.1}" x2="{l}" y2="{y:.1}" stroke="#444"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
                l - 5.0,
                l - 8.0,
                y + 4.0,
                label(t)
            );
        }
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text transform="translate({:.1},{:.1}) rotate(-90)" text-anchor="middle">{}</text></g>"#,
            l + PW / 2.0,
            BOTTOM + 42.0,
            esc(self.x_label),
            l - 55.0,
            (TOP + BOTTOM) / 2.0,
            esc(self.y_label)
        );
    }

    /// One line with markers: the points that have a value.
    fn series(
        &self,
        out: &mut String,
        k: usize,
        s: &Series,
        metric: &str,
        dash: bool,
        value: impl Fn(&Point) -> Option<f64>,
    ) {
        let colour = COLOURS[k % COLOURS.len()];
        let pts: Vec<(f64, f64)> = s
            .points
            .iter()
            .filter_map(|p| value(p).map(|v| (self.px(p.offered), self.py(v))))
            .collect();
        let _ = write!(
            out,
            r#"<g class="series" data-proxy="{}" data-metric="{metric}" data-points="{}">"#,
            esc(&s.proxy),
            pts.len()
        );
        let line: Vec<String> = pts.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let _ = write!(
            out,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"{}/>"#,
            line.join(" "),
            if dash {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            }
        );
        for (x, y) in pts {
            marker(out, k, x, y, colour);
        }
        out.push_str("</g>");
    }
}

/// The whole SVG document.
pub fn svg(series: &[Series], title: &str) -> String {
    let all = || series.iter().flat_map(|s| s.points.iter());
    let xs: Vec<f64> = all().map(|p| p.offered).collect();
    let cpus: Vec<f64> = all().filter_map(|p| p.cpu_us).collect();
    let lats: Vec<f64> = all().flat_map(|p| [p.p50_us, p.p99_us]).flatten().collect();
    let x = Scale::Linear {
        max: nice_ticks(xs.iter().copied().fold(0.0, f64::max)).0,
    };
    let lat_scale = Scale::for_values(&lats, true);
    let cpu = Panel {
        left: LEFTS[0],
        x,
        y: Scale::for_values(&cpus, false),
        title: "Proxy CPU per call",
        x_label: "offered load (calls/s)",
        y_label: "CPU per call (µs)",
    };
    let lat = Panel {
        left: LEFTS[1],
        x,
        y: lat_scale,
        title: "Latency INVITE → 200 (solid p50, dashed p99)",
        x_label: "offered load (calls/s)",
        y_label: if matches!(lat_scale, Scale::Log { .. }) {
            "latency (µs, log scale)"
        } else {
            "latency (µs)"
        },
    };
    let mut out = String::with_capacity(16 << 10);
    let _ = write!(
        out,
        r#"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="{W}" height="{H}" fill="white"/>
<text x="{}" y="28" text-anchor="middle" font-size="17" font-weight="bold">{}</text>
"#,
        W / 2.0,
        esc(title)
    );
    cpu.axes(&mut out);
    lat.axes(&mut out);
    out.push('\n');
    for (k, s) in series.iter().enumerate() {
        cpu.series(&mut out, k, s, "cpu_us_per_call", false, |p| p.cpu_us);
        lat.series(&mut out, k, s, "p50_us", false, |p| p.p50_us);
        lat.series(&mut out, k, s, "p99_us", true, |p| p.p99_us);
        out.push('\n');
    }
    // Legend: one entry per proxy, centred under the panels.
    let entry = 150.0;
    let x0 = W / 2.0 - entry * series.len() as f64 / 2.0;
    out.push_str(r#"<g class="legend">"#);
    for (k, s) in series.iter().enumerate() {
        let x = x0 + k as f64 * entry;
        let y = H - 25.0;
        let colour = COLOURS[k % COLOURS.len()];
        let _ = write!(
            out,
            r#"<line x1="{x:.1}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{colour}" stroke-width="2"/>"#,
            x + 30.0
        );
        marker(&mut out, k, x + 15.0, y, colour);
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            x + 38.0,
            y + 4.0,
            esc(&s.proxy)
        );
    }
    out.push_str("</g>\n</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TSV: &str = "\
proxy\tshards\toffered_cps\tachieved_cps\tcpu_us_per_call\tp50_us\tp99_us\tpassed
siphon\t2\t3000\t2999\t21.5\t180\t900\tyes
kamailio\t2\t1000\t1000\t60.1\t220\t1500\tyes
siphon\t2\t1000\t1000\t25.0\t150\t600\tyes
kamailio\t2\t3000\t2900\t55\t-\t-\tno
siphon\t2\t-\t-\t-\t-\t-\tno
# a comment
kamailio\t2\t6000\t-\t-\t-\t-\tno
";

    #[test]
    fn reads_series_in_order_skipping_dashes() {
        let s = parse_tsv(TSV).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(
            (s[0].proxy.as_str(), s[1].proxy.as_str()),
            ("siphon", "kamailio")
        );
        // Sorted by rate; the row without an offered rate is gone.
        let x: Vec<f64> = s[0].points.iter().map(|p| p.offered).collect();
        assert_eq!(x, [1000.0, 3000.0]);
        assert_eq!(s[0].points[0].cpu_us, Some(25.0));
        // Latency '-' keeps the CPU value; an all-'-' row is skipped.
        assert_eq!(
            s[1].points,
            vec![
                Point {
                    offered: 1000.0,
                    cpu_us: Some(60.1),
                    p50_us: Some(220.0),
                    p99_us: Some(1500.0)
                },
                Point {
                    offered: 3000.0,
                    cpu_us: Some(55.0),
                    p50_us: None,
                    p99_us: None
                },
            ]
        );
    }

    #[test]
    fn a_missing_column_is_an_error() {
        let e = parse_tsv("proxy\toffered_cps\tp50_us\tp99_us\nsiphon\t1\t2\t3\n").unwrap_err();
        assert!(e.contains("cpu_us_per_call"), "{e}");
        assert!(parse_tsv("").is_err());
    }

    #[test]
    fn ticks_are_round_and_cover_the_data() {
        assert_eq!(
            nice_ticks(13_500.0),
            (15_000.0, vec![0.0, 5000.0, 10_000.0, 15_000.0])
        );
        assert_eq!(nice_ticks(60.1), (80.0, vec![0.0, 20.0, 40.0, 60.0, 80.0]));
        assert_eq!(nice_ticks(0.0).0, 1.0);
        for m in [0.7, 3.0, 99.0, 101.0, 1234.5, 2e6] {
            let (top, t) = nice_ticks(m);
            assert!(top >= m && (4..=11).contains(&t.len()), "{m}: {top} {t:?}");
        }
        assert_eq!(
            (label(15_000.0), label(2.5), label(1e6), label(0.0)),
            ("15k".into(), "2.5".into(), "1M".into(), "0".into())
        );
        assert_eq!(
            Scale::for_values(&[150.0, 90_000.0], true),
            Scale::Log { lo: 2, hi: 5 }
        );
        assert_eq!(
            Scale::for_values(&[150.0, 900.0], true),
            Scale::Linear { max: 1000.0 }
        );
    }

    /// Tags balance, attributes are quoted, text has no raw '<' or '&'.
    fn check_well_formed(doc: &str) -> Result<usize, String> {
        let body = doc
            .strip_prefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n")
            .ok_or("no XML declaration")?;
        let mut stack: Vec<String> = Vec::new();
        let mut elements = 0;
        let mut rest = body;
        while let Some(lt) = rest.find('<') {
            let text = &rest[..lt];
            if let Some(a) = text.find('&') {
                let ent = &text[a..];
                if !["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| ent.starts_with(e))
                {
                    return Err(format!("bare & in {text:?}"));
                }
            }
            let gt = rest[lt..].find('>').ok_or("unclosed tag")? + lt;
            let tag = &rest[lt + 1..gt];
            if tag.contains('<') {
                return Err(format!("'<' inside tag {tag:?}"));
            }
            if let Some(name) = tag.strip_prefix('/') {
                let open = stack.pop().ok_or(format!("stray </{name}>"))?;
                if open != name {
                    return Err(format!("<{open}> closed by </{name}>"));
                }
            } else {
                elements += 1;
                let name = tag
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_end_matches('/')
                    .to_owned();
                if tag.matches('"').count() % 2 != 0 {
                    return Err(format!("unbalanced quotes in <{tag}>"));
                }
                if !tag.ends_with('/') {
                    stack.push(name);
                }
            }
            rest = &rest[gt + 1..];
            if stack.is_empty() && elements > 0 {
                break;
            }
        }
        if !stack.is_empty() || !rest.trim().is_empty() {
            return Err(format!("unclosed {stack:?} or trailing {rest:?}"));
        }
        Ok(elements)
    }

    #[test]
    fn the_svg_is_well_formed_with_a_series_per_proxy_and_metric() {
        let s = parse_tsv(TSV).unwrap();
        let doc = svg(&s, "siphon vs kamailio <stateless> & co");
        check_well_formed(&doc).unwrap();
        assert!(doc.contains("siphon vs kamailio &lt;stateless&gt; &amp; co"));
        for (proxy, metric, n) in [
            ("siphon", "cpu_us_per_call", 2),
            ("siphon", "p50_us", 2),
            ("siphon", "p99_us", 2),
            ("kamailio", "cpu_us_per_call", 2),
            ("kamailio", "p50_us", 1),
            ("kamailio", "p99_us", 1),
        ] {
            let g = format!(r#"data-proxy="{proxy}" data-metric="{metric}" data-points="{n}""#);
            assert_eq!(doc.matches(&g).count(), 1, "{g}");
        }
        // p99 dashed, p50 and CPU solid; two colours; a legend entry each.
        assert_eq!(doc.matches("stroke-dasharray").count(), 2);
        assert!(doc.contains("#1f77b4") && doc.contains("#d62728"));
        let legend = &doc[doc.find(r#"<g class="legend">"#).unwrap()..];
        assert!(legend.contains(">siphon</text>") && legend.contains(">kamailio</text>"));
        // Latencies 150..1500 span 10x: linear axis; ticks reach 3k on x.
        assert!(doc.contains(">latency (µs)<") && doc.contains(">3k<"));
    }

    #[test]
    fn the_checker_catches_broken_documents() {
        let head = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
        assert!(check_well_formed(&format!("{head}<svg><g></svg>")).is_err());
        assert!(check_well_formed(&format!("{head}<svg><text>a & b</text></svg>")).is_err());
        assert!(check_well_formed(&format!("{head}<svg><g a=\"1/></g></svg>")).is_err());
        assert_eq!(
            check_well_formed(&format!("{head}<svg><g><line/></g></svg>")),
            Ok(3)
        );
    }

    #[test]
    fn points_land_inside_the_plot_area() {
        let p = Panel {
            left: LEFTS[1],
            x: Scale::Linear { max: 4000.0 },
            y: Scale::Log { lo: 2, hi: 4 },
            title: "",
            x_label: "",
            y_label: "",
        };
        assert_eq!(p.px(0.0), LEFTS[1]);
        assert_eq!(p.px(4000.0), LEFTS[1] + PW);
        assert_eq!(p.py(100.0), BOTTOM);
        assert_eq!(p.py(10_000.0), TOP);
        assert!((p.py(1000.0) - (TOP + BOTTOM) / 2.0).abs() < 1e-9);
    }
}
