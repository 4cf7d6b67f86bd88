"""The evaluation report: one self-contained HTML page per run, plots embedded as PNG.

Shows tonight's model against the baselines on the held-out slice (overall and on cold-start
videos), the gate's verdict, which modality earns its keep (the model's held-out NDCG@10 and HR@10
with each of text, visual, audio and the ID embeddings removed at scoring time, and the
re-ranker's feature gain, as a plot), how the baselines were tuned (every grid point with its
validation NDCG@10, the chosen one marked, and SASRec's early-stopped epochs), and the history of
the published model's metrics across runs.
"""

from __future__ import annotations

import base64
import html
import io

import pandas as pd

# Rows of tables/model_metrics that are not a ranking method's held-out metrics: tonight's model
# with one modality removed at scoring time (method ablation_without_<modality>: ndcg@10, hr@10,
# videos_with_modality), and the re-ranker's total gain per feature (method ranker_gain, metric =
# the feature).
ABLATION_PREFIX = "ablation_without_"
RANKER_GAIN = "ranker_gain"
# What an ablation row says when no video has the modality.
ABSENT = {"text": "no text", "visual": "no media", "audio": "no media", "collaborative": "no trained IDs"}


def is_diagnostic(method: str) -> bool:
    """Whether a model_metrics method is an ablation or the ranker's gain, not a ranking method."""
    return method.startswith(ABLATION_PREFIX) or method == RANKER_GAIN


SHOWN_METRICS = ("hr@10", "ndcg@10", "hr@50", "ndcg@50", "mrr", "coverage@10",
                 "cold_hr@10", "cold_ndcg@10", "users", "cold_users")


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")  # no display: render to files only
    from matplotlib import pyplot as plt
    return plt


def _comparison_plot(tonight: pd.DataFrame) -> str:
    plt = _pyplot()
    wide = tonight.pivot(index="method", columns="metric", values="value")
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, metric in zip(axes, ("ndcg@10", "hr@10")):
        values = wide[metric].sort_values() if metric in wide else pd.Series(dtype=float)
        colours = ["tab:orange" if m.startswith("two_tower") else "tab:grey" for m in values.index]
        ax.barh(values.index, values.to_numpy(), color=colours)
        ax.set_title(metric)
    figure.tight_layout()
    try:
        return _png(figure)
    finally:
        plt.close(figure)


def _history_plot(history: pd.DataFrame) -> str:
    plt = _pyplot()
    figure, ax = plt.subplots(figsize=(10, 3.4))
    for method, rows in history[history["metric"] == "ndcg@10"].groupby("method"):
        rows = rows.sort_values("run_date")
        ax.plot(rows["run_date"].astype(str), rows["value"], marker="o", label=method,
                linewidth=2.5 if method == "published" else 1.0)
    ax.set_title("NDCG@10 by run")
    ax.legend(fontsize=8)
    ax.tick_params(axis="x", rotation=30)
    figure.tight_layout()
    try:
        return _png(figure)
    finally:
        plt.close(figure)


def ablation_section(tonight: pd.DataFrame, published_method: str, ranker_used: bool) -> str:
    """The ablation table (a row per modality: how many videos have it, NDCG@10 and HR@10 without
    it and the change from the full model) and a plot of it beside the re-ranker's gain."""
    rows = tonight[tonight["method"].str.startswith(ABLATION_PREFIX)]
    if rows.empty:
        return "<p>No ablation was measured for this model (trained before the ablation existed).</p>"
    wide = rows.pivot(index="method", columns="metric", values="value")
    full = tonight[tonight["method"] == published_method].set_index("metric")["value"]
    cells, bars = [], {}
    for method, values in wide.iterrows():
        modality = method[len(ABLATION_PREFIX):]
        count = int(values.get("videos_with_modality", 0))
        if "ndcg@10" not in values or pd.isna(values.get("ndcg@10")):
            cells.append([modality, f"{count}", ABSENT.get(modality, "absent"), "", "", ""])
            continue
        deltas = {m: values[m] - full.get(m, float("nan")) for m in ("ndcg@10", "hr@10")}
        bars[modality] = values["ndcg@10"]
        cells.append([modality, f"{count}", f"{values['ndcg@10']:.4f}", f"{deltas['ndcg@10']:+.4f}",
                      f"{values['hr@10']:.4f}", f"{deltas['hr@10']:+.4f}"])
    table = ("<table><tr><th>removed</th><th>videos with it</th><th>NDCG@10 without</th><th>change</th>"
             "<th>HR@10 without</th><th>change</th></tr>"
             + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in cells)
             + "</table>")
    gain = tonight[tonight["method"] == RANKER_GAIN].set_index("metric")["value"].sort_values()
    note = (f"<p>Tonight's published scorer ({html.escape(published_method)}, held-out NDCG@10 "
            f"{full.get('ndcg@10', float('nan')):.4f}, HR@10 {full.get('hr@10', float('nan')):.4f}) "
            "scored again on the "
            "same held-out slice with one input removed for every video: its feature blocks and presence flags "
            "zeroed (text; visual: frame features and thumbnail; audio), or, for collaborative, the videos' ID "
            "embeddings. A large drop means the model leans on that input. The re-ranker's gain is its "
            "total split gain per feature" + ("" if ranker_used or gain.empty else
                                              " (fitted tonight, but not used: it did not improve the tower)")
            + ".</p>")
    return note + table + _ablation_plot(full.get("ndcg@10", float("nan")), bars, gain)


def _ablation_plot(full_ndcg: float, bars: dict[str, float], gain: pd.Series) -> str:
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2 if not gain.empty else 1, figsize=(10 if not gain.empty else 5, 3.4),
                                squeeze=False)
    ax = axes[0][0]
    labels = ["full model", *[f"without {m}" for m in bars]]
    ax.barh(labels, [full_ndcg, *bars.values()], color=["tab:orange", *["tab:blue"] * len(bars)])
    ax.set_title("held-out NDCG@10")
    if not gain.empty:
        axes[0][1].barh(gain.index, gain.to_numpy(), color="tab:green")
        axes[0][1].set_title("re-ranker feature importance (gain)")
    figure.tight_layout()
    try:
        return _png(figure)
    finally:
        plt.close(figure)


def _setting(setting: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in setting.items())


def tuning_table(tuning: dict[str, dict], sequential: dict) -> str:
    """The tuned baselines: one row per grid point (the chosen one in bold), then SASRec's line."""
    rows = []
    for method, record in tuning.items():
        usual = record.get("usual", {})
        for point in record["grid"]:
            chosen = point["setting"] == record["chosen"]
            is_usual = all(usual.get(key) == value for key, value in point["setting"].items())
            marks = ", ".join(m for m, on in (("chosen", chosen), ("usual setting", is_usual)) if on)
            cells = [method, _setting(point["setting"]), f"{point['validation_ndcg@10']:.4f}", marks]
            cells = [html.escape(c) for c in cells]
            rows.append("<tr>" + "".join(f"<td><b>{c}</b></td>" if chosen else f"<td>{c}</td>" for c in cells)
                        + "</tr>")
    if sequential.get("ran"):
        setting = {k: sequential[k] for k in ("max_len", "hidden", "blocks", "heads", "dropout", "loss")
                   if k in sequential}
        final = {"scratch": "then trained again on all the training data",
                 "early-stopped": "then fine-tuned on all the training data"}.get(sequential.get("final_from"), "")
        epochs = (f"{sequential['best_epoch']} epochs (best of {sequential['search_epochs']} tried), {final}; "
                  f"{sequential['train_seconds']:.1f}s in all").replace(", ;", ";")
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in (
            "sasrec", _setting(setting), f"{sequential.get('validation_ndcg@10') or 0.0:.4f}", epochs)) + "</tr>")
    note = "" if sequential.get("ran") or not sequential else \
        f"<p>SASRec did not run tonight: {html.escape(str(sequential.get('why', '')))}.</p>"
    if not rows:
        return note or "<p>The baselines ran with their usual settings (no tuning tonight).</p>"
    users = next((r.get("validation_users") for r in tuning.values()), None)
    tuned_on = sorted({r["tuned_on"] for r in tuning.values() if r.get("tuned_on")})
    when = (f"on the night of {', '.join(tuned_on)} (the full retrain this model descends from; reused "
            "tonight, not tuned again)" if tuned_on else "tonight")
    return (f"<p>Tuned {html.escape(when)}: each setting was fit on the training data less each user's last "
            f"interaction and scored by NDCG@10 on those interactions{f' ({users} users)' if users else ''}; "
            f"the chosen one was then fit on all the training data and measured on the held-out slice above.</p>"
            "<table><tr><th>method</th><th>setting</th><th>validation NDCG@10</th><th>note</th></tr>"
            + "".join(rows) + "</table>" + note)


LEAVE_LAST_OUT = "leave-last-out: each user's most recent interaction is held out (a full retrain's night)."


def after_cutoff_protocol(cutoff_utc: str, production: str | None) -> str:
    return (f"after-cutoff: the users' new videos after {cutoff_utc}, which no method trained on; "
            f"the production model {production} is measured on the same exam (an incremental night).")


def render(run_date: str, model_version: str, tonight: pd.DataFrame, history: pd.DataFrame,
           verdict: str, training: dict, tuning: dict[str, dict] | None = None,
           sequential: dict | None = None, ranker_used: bool = False, protocol: str = LEAVE_LAST_OUT) -> str:
    """The page. `tonight`/`history`: rows of (run_date, method, metric, value, is_published), the
    ablation and gain rows among them; `tuning`: method -> grid record
    (models.baselines.Tuning.as_record); `sequential`: SASRec's facts; `protocol`: how tonight's
    figures were held out (LEAVE_LAST_OUT or after_cutoff_protocol(...))."""
    published_method = next(iter(tonight.loc[tonight["is_published"], "method"]), "two_tower")
    ablation = ablation_section(tonight, published_method, ranker_used)
    tonight = tonight[~tonight["method"].map(is_diagnostic)]
    history = history[~history["method"].map(is_diagnostic)]
    wide = tonight.pivot(index="method", columns="metric", values="value")
    wide = wide[[m for m in SHOWN_METRICS if m in wide.columns]]
    published = history.loc[history["is_published"]].assign(method="published")
    baselines = history.loc[~history["method"].str.startswith("two_tower")]
    facts = "".join(f"<li>{html.escape(str(k))}: {html.escape(str(v))}</li>" for k, v in training.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>Evaluation {html.escape(run_date)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}}</style></head><body>
<h1>Evaluation of {html.escape(model_version)}</h1>
<p>Run date {html.escape(run_date)}. Tonight's figures: {html.escape(protocol)} Every method ranks the whole
catalog with the user's earlier videos excluded. In the history each night's figures use that night's
protocol: leave-last-out on full nights, the after-cutoff exam on incremental ones.</p>
<p><b>Gate:</b> {html.escape(verdict)}</p>
<h2>Tonight, held-out slice</h2>
{wide.to_html(float_format=lambda v: f"{v:.0f}" if v >= 1 and float(v).is_integer() else f"{v:.4f}")}
{_comparison_plot(tonight)}
<h2>Which modality earns its keep</h2>
{ablation}
<h2>Tuned baselines</h2>
{tuning_table(tuning or {}, sequential or {})}
<h2>History</h2>
{_history_plot(pd.concat([published, baselines]))}
<h2>Training</h2><ul>{facts}</ul>
</body></html>
"""
