#!/usr/bin/python3
"""Charts of bench/net/run.py results: tunnel vs the two ceilings (kernel path, plain relay).

    chart.py OUT.png RESULT.json [RESULT2.json ...]

With several results, each one's tunnel bars are drawn beside the ceilings of the first (for
a before/after picture: put the newest last). Medians as bars, min-max as error bars.
"""
import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"kernel": "#777777", "relay": "#4c72b0", "tunnel": "#dd8452"}
EXTRA = ["#55a868", "#c44e52", "#8172b2", "#937860"]


def _bar(ax, x, s, color, label, w):
    if not s or s.get("median") is None:
        return
    m = s["median"]
    err = [[m - s["min"]], [s["max"] - m]]
    ax.bar([x], [m], w, color=color, label=label, yerr=err, capsize=3)


def plot(files, png):
    docs = [json.loads(Path(f).read_text()) for f in files]
    first = docs[0]
    series = [("kernel", first, COLORS["kernel"], "kernel path"),
              ("relay", first, COLORS["relay"], "plain relay")]
    for i, d in enumerate(docs):
        lab = f"tun2sock {d['label']}" if len(docs) > 1 else "tun2sock"
        series.append(("tunnel", d, COLORS["tunnel"] if i == len(docs) - 1 else EXTRA[i % 4],
                       lab))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8), gridspec_kw={"width_ratios": [3, 1.4, 1.4]})
    w = 0.8 / len(series)
    # throughput
    ax = axes[0]
    cfgs = [c for c in ("up1", "down1", "up4", "down4", "http") if
            (c == "http" and "http100m" in first["results"]) or c in first["results"].get("tcp", {})]
    seen = set()
    for ci, cfg in enumerate(cfgs):
        for si, (path, d, color, lab) in enumerate(series):
            block = d["results"].get("http100m", {}) if cfg == "http" else \
                d["results"].get("tcp", {}).get(cfg, {})
            s = block.get(path, {}).get("gbps")
            _bar(ax, ci + (si - (len(series) - 1) / 2) * w, s, color,
                 None if lab in seen else lab, w)
            seen.add(lab)
    ax.set_xticks(range(len(cfgs)))
    ax.set_xticklabels([{"up1": "upload\n1 stream", "down1": "download\n1 stream",
                         "up4": "upload\n4 streams", "down4": "download\n4 streams",
                         "http": "HTTP 100 MB\ndownload"}[c] for c in cfgs])
    ax.set_ylabel("Gbit/s (median, min-max)")
    ax.set_title("TCP throughput")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    # CPU per GB
    ax = axes[1]
    cseries = [s for s in series if s[0] != "kernel"]
    cw = 0.8 / len(cseries)
    for ci, cfg in enumerate(("up1", "down1")):
        for si, (path, d, color, lab) in enumerate(cseries):
            s = d["results"].get("tcp", {}).get(cfg, {}).get(path, {}).get("cpu_s_per_gb")
            _bar(ax, ci + (si - (len(cseries) - 1) / 2) * cw, s, color, None, cw)
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["upload", "download"])
    ax.set_ylabel("CPU seconds per GB (measured process)")
    ax.set_title("CPU cost, 1 stream")
    # connection rate
    ax = axes[2]
    for si, (path, d, color, lab) in enumerate(series):
        s = d["results"].get("conn", {}).get(path, {}).get("conn_per_s")
        _bar(ax, si, s, color, None, 0.7)
    ax.set_xticks(range(len(series)))
    ax.set_xticklabels([s[3].replace("tun2sock ", "t2s\n") for s in series], fontsize=8)
    ax.set_ylabel("new connections per second (HTTP/1.1, h2load)")
    ax.set_title("Connection rate")
    fig.suptitle(f"tun2sock bench {first['date']} ({first['commit']}, kernel {first['kernel']})",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    plot(sys.argv[2:], sys.argv[1])
