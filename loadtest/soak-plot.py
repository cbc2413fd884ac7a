#!/usr/bin/env python3
"""RSS and CPU over time from loadtest/soak.sh's samples, as an SVG.

    soak-plot.py --input soak.tsv --output soak.svg [--title T] [--warmup S]

Reads the TSV soak.sh writes (columns elapsed_s, phase, rss_kb, cpu_pct
and others; a header line first) and draws two panels sharing the time
axis: siphon's RSS in MB (top; the baseline dashed, the RSS after the
drain as a dot) and its CPU in % of one core (bottom). The warm-up (up to
--warmup s) and the drain are shaded. Standard library only; siphon-loadgen
plot draws against offered rate, not time."""

import argparse
import math
import sys
from xml.sax.saxutils import escape

W, H = 900, 585
LEFT, RIGHT, TOP = 70, 20, 50
PANEL_H, GAP = 190, 60


def nice_ticks(lo, hi, n=5):
    """About n round ticks covering lo..hi."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step)
    last = math.ceil(hi / step)
    return [k * step for k in range(first, last + 1)], step


def fmt(v):
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.1f}"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--title", default="siphon soak")
    p.add_argument("--warmup", type=float, default=0.0)
    a = p.parse_args()

    rows = []
    with open(a.input) as f:
        header = f.readline().rstrip("\n").split("\t")
        col = {name: i for i, name in enumerate(header)}
        for need in ("elapsed_s", "phase", "rss_kb", "cpu_pct"):
            if need not in col:
                print(f"soak-plot: no column {need} in {a.input}", file=sys.stderr)
                return 2
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            v = line.rstrip("\n").split("\t")
            try:
                rows.append(
                    (float(v[col["elapsed_s"]]), v[col["phase"]], float(v[col["rss_kb"]]) / 1024, float(v[col["cpu_pct"]]))
                )
            except (ValueError, IndexError):
                continue
    if not rows:
        print("soak-plot: no samples", file=sys.stderr)
        return 2

    t_max = max(r[0] for r in rows)
    load = [r for r in rows if r[1] == "load"]
    drain = [r for r in rows if r[1] in ("drain", "after")]
    base = [r for r in rows if r[1] == "base"]
    after = [r for r in rows if r[1] == "after"]
    load_end = max((r[0] for r in load), default=0.0)
    xt, _ = nice_ticks(0, t_max, 8)
    x_hi = max(t_max, xt[-1])
    plot_w = W - LEFT - RIGHT

    def x(t):
        return LEFT + plot_w * t / x_hi if x_hi > 0 else LEFT

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
        'font-family="sans-serif" font-size="12">',
        f'<rect width="{W}" height="{H}" fill="white"/>',
        f'<text x="{W / 2}" y="22" text-anchor="middle" font-size="14">{escape(a.title)}</text>',
    ]

    def panel(top, label, key, color, extra):
        vals = [r[key] for r in rows]
        lo = 0.0
        hi = max(vals) * 1.1 if max(vals) > 0 else 1.0
        yt, _ = nice_ticks(lo, hi, 5)
        hi = max(hi, yt[-1])

        def y(v):
            return top + PANEL_H - PANEL_H * (v - lo) / (hi - lo)

        # shaded warm-up and drain
        if a.warmup > 0:
            out.append(f'<rect x="{x(0):.1f}" y="{top}" width="{x(min(a.warmup, x_hi)) - x(0):.1f}" height="{PANEL_H}" fill="#eee"/>')
        if drain:
            out.append(f'<rect x="{x(load_end):.1f}" y="{top}" width="{x(t_max) - x(load_end):.1f}" height="{PANEL_H}" fill="#e8f0ff"/>')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#444"/>')
        for t in yt:
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#ddd"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{fmt(t)}</text>')
        for t in xt:
            out.append(f'<line x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top + PANEL_H}" y2="{top + PANEL_H + 4}" stroke="#444"/>')
            out.append(f'<text x="{x(t):.1f}" y="{top + PANEL_H + 17}" text-anchor="middle">{fmt(t)}</text>')
        out.append(
            f'<text transform="translate({LEFT - 48},{top + PANEL_H / 2}) rotate(-90)" text-anchor="middle">{escape(label)}</text>'
        )
        pts = " ".join(f"{x(r[0]):.1f},{y(r[key]):.1f}" for r in rows)
        out.append(f'<polyline points="{pts}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        extra(y)

    def rss_extra(y):
        if base:
            b = base[0][2]
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(b):.1f}" y2="{y(b):.1f}" stroke="#888" stroke-dasharray="4,3"/>'
            )
            out.append(f'<text x="{LEFT + 4}" y="{y(b) - 4:.1f}" fill="#666">baseline {b:.1f} MB</text>')
        if after:
            t, _, r, _ = after[-1]
            out.append(f'<circle cx="{x(t):.1f}" cy="{y(r):.1f}" r="4" fill="#c00"/>')
            out.append(f'<text x="{x(t) - 6:.1f}" y="{y(r) - 8:.1f}" text-anchor="end" fill="#c00">after drain {r:.1f} MB</text>')

    panel(TOP, "RSS (MB)", 2, "#1f5fbf", rss_extra)
    panel(TOP + PANEL_H + GAP, "CPU (% of one core)", 3, "#d2691e", lambda y: None)
    yb = TOP + 2 * PANEL_H + GAP + 40
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{yb}" text-anchor="middle">elapsed (s) since the load started</text>')
    legend = []
    if a.warmup > 0:
        legend.append(("#eee", f"warm-up (first {fmt(a.warmup)} s, not judged)"))
    if drain:
        legend.append(("#e8f0ff", "drain (load stopped)"))
    lx = LEFT
    for fill, text in legend:
        out.append(f'<rect x="{lx}" y="{yb + 12}" width="14" height="10" fill="{fill}" stroke="#999"/>')
        out.append(f'<text x="{lx + 20}" y="{yb + 21}">{escape(text)}</text>')
        lx += 30 + 7 * len(text)
    out.append("</svg>")
    with open(a.output, "w") as f:
        f.write("\n".join(out) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
