"""`report.html`: everything a run left behind, in one file that opens anywhere.

The file is self-contained (no network, no scripts): every image is a base64 `data:` URI. It shows the
run's evaluation (eval.json, if any, with its protocol), the final samples, the training curves (losses,
D(x) and D(G(z)), D's accuracy against the 50% line, and the `eval/...` metrics over time), a filmstrip
of the fixed-noise samples over training, and the config.
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

from ganforge.errors import ConfigError

FRAMES = 10          # filmstrip length
FRAME_SIZE = 220     # filmstrip thumbnails, px
SAMPLES_SIZE = 640   # final samples, px (at most)

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px auto; max-width: 1200px; color: #222; padding: 0 16px; }
h1 { margin-bottom: 0; } .sub { color: #666; margin-top: 4px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 14px; } td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.row { display: flex; gap: 32px; flex-wrap: wrap; align-items: flex-start; }
.strip { display: flex; gap: 8px; overflow-x: auto; padding-bottom: 8px; }
figure { margin: 0; text-align: center; } figcaption { font-size: 12px; color: #555; }
img { image-rendering: pixelated; max-width: 100%; } img.plot { image-rendering: auto; }
.note { color: #666; font-size: 13px; max-width: 60em; }
"""


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _png(path: Path, max_size: int) -> bytes:
    """A PNG file, shrunk to fit max_size (pixel art stays sharp: nearest when shrinking a little)."""
    from PIL import Image

    with Image.open(path) as img:
        img.load()
        if max(img.size) > max_size:
            img.thumbnail((max_size, max_size), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _img(png: bytes, alt: str, cls: str = "") -> str:
    return f'<img src="{_data_uri(png)}" alt="{html.escape(alt)}"{f" class={cls!r}" if cls else ""}>'


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    if value is None:
        return "—"
    return str(value)


def _table(pairs, header: tuple[str, str] | None = None) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td class=num>{html.escape(_fmt(v))}</td></tr>"
                   for k, v in pairs)
    head = f"<tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr>" if header else ""
    return f"<table>{head}{rows}</table>"


def _read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # a line cut short by a crash: skip it, keep the rest
            continue
    return [r for r in rows if isinstance(r, dict) and "step" in r]


def _plot(fn, rows) -> bytes | None:
    buf = io.BytesIO()
    return buf.getvalue() if fn(rows, buf) is not None else None


def _evaluation_section(result: dict) -> str:
    """eval.json: the headline numbers, class coverage and the protocol they were measured under."""
    skip = {"protocol", "per_mode", "class_coverage", "run", "best", "real", "dataset", "kind", "during_training"}
    metrics = [(k, v) for k, v in result.items() if k not in skip and not isinstance(v, (dict, list))]
    parts = ["<div class=row>", "<div><h3>metrics</h3>", _table(metrics, ("metric", "value"))]
    if isinstance(result.get("real"), dict):
        parts += ["<h3>the real data, same protocol</h3>", _table(result["real"].items())]
    best = result.get("best")
    if isinstance(best, dict):
        parts.append(f"<p>best checkpoint: step {html.escape(_fmt(best.get('step')))} "
                     f"({html.escape(str(best.get('metric')))} {html.escape(_fmt(best.get('value')))})</p>")
    parts.append("</div>")
    coverage = result.get("class_coverage")
    if isinstance(coverage, dict):
        parts.append("<div><h3>class coverage</h3>")
        if "skipped" in coverage:
            parts.append(f"<p class=note>{html.escape(coverage['skipped'])}</p>")
        else:
            parts.append(_table([(k, v) for k, v in coverage.items() if not isinstance(v, dict)]))
            if isinstance(coverage.get("histogram"), dict):
                parts += ["<h3>predicted classes</h3>", _table(coverage["histogram"].items(), ("class", "samples"))]
        parts.append("</div>")
    if isinstance(result.get("protocol"), dict):
        parts += ["<div><h3>protocol</h3>", _table(result["protocol"].items()),
                  "<p class=note>Compare numbers only under the same protocol (sample counts, split, resize, "
                  "feature extractor). Only FIDs in InceptionV3 features (<code>--features inception</code>) "
                  "compare with published ones; classifier FDs compare runs of this dataset with each other."
                  "</p></div>"]
    parts.append("</div>")
    return "".join(parts)


def build_report(run_dir: str | Path, out: str | Path | None = None, frames: int = FRAMES) -> Path:
    """Write RUN/report.html (or `out`) and return its path."""
    import yaml

    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a ganforge run directory (no config.yaml): pass the --out of a "
                          f"training run")
    out = Path(out) if out else run_dir / "report.html"
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{run_dir}/config.yaml is not valid YAML ({str(e).splitlines()[0]}): fix or retrain") from None
    rows = _read_rows(run_dir / "metrics.jsonl")
    eval_path = run_dir / "eval.json"
    try:
        result = json.loads(eval_path.read_text()) if eval_path.is_file() else None
    except ValueError:
        result = None

    title = f"ganforge run {run_dir.resolve().name}"
    last = rows[-1] if rows else {}
    summary = (f"{config.get('model')} on {config.get('data')}, {config.get('loss')} loss, "
               f"{last.get('step', 0)} of {config.get('steps')} steps")
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p class=sub>{html.escape(summary)} — report written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>"]

    body.append("<h2>evaluation</h2>")
    if result:
        body.append(_evaluation_section(result))
    else:
        body.append(f"<p class=note>no eval.json: run <code>ganforge eval {html.escape(str(run_dir))}</code> "
                    f"or train with <code>--eval-every STEPS</code>.</p>")

    body.append("<h2>final samples</h2>")
    final = run_dir / "samples.png"
    snapshots = sorted((run_dir / "samples").glob("step-*.png"))
    if not final.is_file() and snapshots:
        final = snapshots[-1]
    body.append(_img(_png(final, SAMPLES_SIZE), "final samples") if final.is_file() else "<p class=note>no samples</p>")

    body.append("<h2>training curves</h2>")
    if rows:
        from ganforge.plots import plot_curves, plot_eval

        body.append(_img(_plot(plot_curves, rows), "losses, D outputs and D accuracy", "plot"))
        body.append("<p class=note>Training has converged when D can no longer tell real from fake: its accuracy "
                    "sits near the 50% line.</p>")
        evals = _plot(plot_eval, rows)
        if evals:
            body += ["<h3>metrics over training</h3>", _img(evals, "evaluation metrics over training", "plot")]
    else:
        body.append("<p class=note>no metrics.jsonl lines yet</p>")

    body.append("<h2>samples over training</h2><p class=note>the same noise through G at each step</p>")
    if snapshots:
        count = min(frames, len(snapshots))  # evenly spaced, first and last included
        picked = sorted({snapshots[round(i * (len(snapshots) - 1) / max(1, count - 1))] for i in range(count)})
        body.append("<div class=strip>")
        for path in picked:
            step = int(path.stem.split("-")[1])
            body.append(f"<figure>{_img(_png(path, FRAME_SIZE), f'samples at step {step}')}"
                        f"<figcaption>step {step}</figcaption></figure>")
        body.append("</div>")
    else:
        body.append("<p class=note>no sample grids</p>")

    body += ["<h2>config</h2>", _table(config.items(), ("setting", "value")),
             f"<p class=note>replay: <code>ganforge train --config {html.escape(str(run_dir / 'config.yaml'))}</code></p>"]

    page = (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>{''.join(body)}</body></html>\n")
    from ganforge.checkpoint import atomic_write

    try:
        atomic_write(out, lambda f: f.write(page.encode()))
        out.chmod(0o644)  # a page to share, not a secret (temporary files start private)
    except OSError as e:
        raise ConfigError(f"cannot write {out} ({e.strerror}): choose a writable --out") from None
    return out
