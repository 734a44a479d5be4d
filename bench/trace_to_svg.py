#!/usr/bin/env python3
"""Render a conveyor Chrome trace (conveyor train --trace, conveyor schedule --trace) as SVG.

One row per stage (the trace's tid); compute spans are coloured boxes (F forward, B input
gradient, W weight gradient, BW both), receives are thin grey bars under the row (the time
spent waiting for the data), sends are short dark ticks (they never block). Time axis in ms.

    python3 bench/trace_to_svg.py run.json out.svg [--step N] [--title TEXT]

--step N keeps only step N (1-based); --step last (the default) the last one, 0 every step.
Steps are told apart by stage 0's first forward (F0 or F0.0): every stage joins the
end-of-step all-reduce before stage 0 starts the next step, so a span belongs to the step
whose start precedes the span's end. Standard library only.
"""

import argparse
import json
import math
import re
import sys
from xml.sax.saxutils import escape

COLOURS = {  # compute kind -> fill
    "F": "#4e79a7",
    "B": "#f28e2b",
    "W": "#59a14f",
    "BW": "#e15759",
}
RECV_COLOUR = "#9c9c9c"
SEND_COLOUR = "#222222"

ROW_H = 30  # compute box height
COMM_H = 5  # receive bar height
ROW_GAP = 16
LEFT = 78  # room for the row labels
RIGHT = 86  # room for the busy fraction
TOP = 44
WIDTH = 1100


def is_compute(span):
    # conveyor train uses category "compute"; the schedule simulator "forward", ...
    return span["cat"] not in ("send", "recv")


def kind_of(name):
    m = re.match(r"^(BW|F|B|W)\d", name)
    return m.group(1) if m else None


def load(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    names, spans = {}, []
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "thread_name":
            names[e["tid"]] = e.get("args", {}).get("name", "stage %s" % e["tid"])
        elif e.get("ph") == "X":
            spans.append(
                {
                    "tid": e["tid"],
                    "name": e["name"],
                    "cat": e.get("cat", ""),
                    "ts": float(e["ts"]),
                    "end": float(e["ts"]) + float(e.get("dur", 0)),
                }
            )
    if not spans:
        sys.exit("trace_to_svg: %s has no spans" % path)
    return names, spans


def select_step(spans, step):
    """Returns the spans of one step (1-based, or 'last'), or all of them for step 0."""
    if step == "0":
        return spans, None
    first_tid = min(s["tid"] for s in spans)
    starts = sorted(
        s["ts"] for s in spans if s["tid"] == first_tid and re.match(r"^F0(\.0)?$", s["name"])
    )
    if not starts:
        sys.exit("trace_to_svg: no F0 span on stage %d; use --step 0" % first_tid)
    index = len(starts) if step == "last" else int(step)
    if not 1 <= index <= len(starts):
        sys.exit("trace_to_svg: the trace has %d steps, --step %s is not one" % (len(starts), step))
    begin = starts[index - 1]
    end = starts[index] if index < len(starts) else math.inf
    return [s for s in spans if begin < s["end"] <= end or (s["end"] == begin == s["ts"])], index


def nice_tick(span_ms, target=10):
    raw = span_ms / target
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def render(names, spans, title):
    tids = sorted({s["tid"] for s in spans})
    t0 = min(s["ts"] for s in spans)
    t1 = max(s["end"] for s in spans)
    total_ms = max((t1 - t0) / 1000.0, 1e-6)
    plot_w = WIDTH - LEFT - RIGHT
    x = lambda us: LEFT + (us - t0) / 1000.0 / total_ms * plot_w
    row_pitch = ROW_H + COMM_H + 4 + ROW_GAP
    axis_y = TOP + len(tids) * row_pitch + 4
    height = axis_y + 40 + 34

    out = []
    out.append(
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
        'font-family="DejaVu Sans, Helvetica, Arial, sans-serif" font-size="12">'
        % (WIDTH, height, WIDTH, height)
    )
    out.append('<rect width="100%" height="100%" fill="white"/>')
    out.append('<text x="%d" y="22" font-size="15" font-weight="bold">%s</text>' % (LEFT, escape(title)))

    # Grid and time axis.
    tick = nice_tick(total_ms)
    t = 0.0
    while t <= total_ms + 1e-9:
        gx = LEFT + t / total_ms * plot_w
        out.append(
            '<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#e6e6e6"/>' % (gx, TOP - 6, gx, axis_y)
        )
        out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#444"/>' % (gx, axis_y, gx, axis_y + 5))
        label = ("%g" % round(t, 6))
        out.append('<text x="%.1f" y="%d" text-anchor="middle" fill="#444">%s</text>' % (gx, axis_y + 18, label))
        t += tick
    out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (LEFT, axis_y, LEFT + plot_w, axis_y))
    out.append(
        '<text x="%d" y="%d" text-anchor="middle" fill="#444">time (ms)</text>'
        % (LEFT + plot_w // 2, axis_y + 34)
    )
    out.append(
        '<text x="%d" y="%d" text-anchor="middle" fill="#444">busy</text>' % (WIDTH - RIGHT // 2, TOP - 10)
    )

    for row, tid in enumerate(tids):
        y = TOP + row * row_pitch
        mine = [s for s in spans if s["tid"] == tid]
        label = names.get(tid, "stage %d" % tid)
        out.append(
            '<text x="%d" y="%d" text-anchor="end" font-weight="bold">%s</text>'
            % (LEFT - 10, y + ROW_H // 2 + 4, escape(label))
        )
        out.append(
            '<rect x="%d" y="%d" width="%d" height="%d" fill="#f7f7f7"/>' % (LEFT, y, plot_w, ROW_H)
        )
        busy = 0.0
        for s in mine:
            if not is_compute(s):
                continue
            busy += s["end"] - s["ts"]
            colour = COLOURS.get(kind_of(s["name"]), "#bab0ac")
            bx, bw = x(s["ts"]), max(x(s["end"]) - x(s["ts"]), 0.8)
            out.append(
                '<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s" stroke="white" '
                'stroke-width="0.6"><title>%s  %.3f ms</title></rect>'
                % (bx, y, bw, ROW_H, colour, escape(s["name"]), (s["end"] - s["ts"]) / 1000.0)
            )
            if bw >= 7.5 * len(s["name"]) + 4:
                out.append(
                    '<text x="%.2f" y="%d" text-anchor="middle" fill="white" font-size="11">%s</text>'
                    % (bx + bw / 2, y + ROW_H // 2 + 4, escape(s["name"]))
                )
        cy = y + ROW_H + 2
        for s in mine:
            if s["cat"] == "recv":
                bx, bw = x(s["ts"]), max(x(s["end"]) - x(s["ts"]), 0.8)
                out.append(
                    '<rect x="%.2f" y="%d" width="%.2f" height="%d" fill="%s"><title>%s  %.3f ms'
                    "</title></rect>" % (bx, cy, bw, COMM_H, RECV_COLOUR, escape(s["name"]),
                                         (s["end"] - s["ts"]) / 1000.0)
                )
        for s in mine:
            if s["cat"] == "send":
                sx = x(s["ts"])
                out.append(
                    '<line x1="%.2f" y1="%d" x2="%.2f" y2="%d" stroke="%s" stroke-width="1.4">'
                    "<title>%s</title></line>" % (sx, cy - 1, sx, cy + COMM_H + 3, SEND_COLOUR,
                                                  escape(s["name"]))
                )
        frac = busy / 1000.0 / total_ms
        out.append(
            '<text x="%d" y="%d" text-anchor="middle">%d%%</text>'
            % (WIDTH - RIGHT // 2, y + ROW_H // 2 + 4, round(100 * frac))
        )

    # Legend.
    ly = height - 14
    lx = LEFT
    items = [("F forward", COLOURS["F"]), ("B input grad", COLOURS["B"]),
             ("W weight grad", COLOURS["W"]), ("BW both", COLOURS["BW"])]
    present = {kind_of(s["name"]) for s in spans if is_compute(s)}
    items = [i for i in items if i[0].split()[0] in present] or items
    for text, colour in items:
        out.append('<rect x="%d" y="%d" width="14" height="12" fill="%s"/>' % (lx, ly - 10, colour))
        out.append('<text x="%d" y="%d">%s</text>' % (lx + 19, ly, text))
        lx += 30 + 7 * len(text)
    out.append('<rect x="%d" y="%d" width="22" height="%d" fill="%s"/>' % (lx, ly - 6, COMM_H, RECV_COLOUR))
    out.append('<text x="%d" y="%d">receive (waiting)</text>' % (lx + 27, ly))
    lx += 27 + 7 * 17 + 14
    out.append(
        '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.4"/>'
        % (lx + 4, ly - 10, lx + 4, ly + 1, SEND_COLOUR)
    )
    out.append('<text x="%d" y="%d">send (non-blocking)</text>' % (lx + 12, ly))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("trace", help="Chrome trace JSON written by conveyor")
    ap.add_argument("svg", help="output SVG file")
    ap.add_argument("--step", default="last", help="1-based step to show, 'last' (default) or 0 for all")
    ap.add_argument("--title", default=None, help="title line (default: file name and step)")
    args = ap.parse_args()
    names, spans = load(args.trace)
    chosen, index = select_step(spans, args.step)
    title = args.title or "%s%s" % (args.trace, "" if index is None else ", step %d" % index)
    with open(args.svg, "w") as f:
        f.write(render(names, chosen, title))


if __name__ == "__main__":
    main()
