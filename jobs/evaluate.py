"""Evaluate: tonight's model against the baselines, a metrics table, a report, and the gate.

    python -m jobs.evaluate --warehouse DIR --run-date YYYY-MM-DD [--gate-tolerance 0.25]

On the same held-out slice the train stage measured the model on (each user's most recent
interaction), fits and measures most popular, item-kNN, ALS and BPR. Writes
`tables/model_metrics/<run_date>/` (one row per method and metric) and the HTML report
`runs/<run_date>/evaluation.html`. Then the gate: when tonight's model is clearly worse than the
one whose lists are being served (its held-out NDCG@10 more than the tolerance below), the stage
fails, nothing is scored or published, and the previous lists stay current.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
import pyarrow as pa

from jobs import config
from jobs.model_inputs import load_model_inputs
from jobs.serving import production_model
from jobs.stage import StageError, base_parser, read_counters, run_stage, write_counters
from jobs.tables import read_table, write_arrow_table

STAGE = "evaluate"
GATE_METRIC = "ndcg@10"


def baseline_metrics(wh: config.Warehouse, seed: int, max_eval_users: int | None) -> dict[str, dict]:
    from models.baselines import fit_baselines
    from models.evaluation import evaluate, leave_last_out

    inputs = load_model_inputs(wh)
    n_users, n_items = len(inputs.user_ids), len(inputs.video_ids)
    holdout = leave_last_out(inputs.data, n_items, max_eval_users, seed)
    baselines = fit_baselines(holdout.train, n_users, n_items, seed=seed)
    return {name: evaluate(scorer, holdout, n_users, n_items) for name, scorer in baselines.items()}


def published_score(wh: config.Warehouse, version: str) -> float | None:
    """The held-out gate metric a model scored on its own night, from its artifact."""
    document = wh.models / version / "model.json"
    if not document.exists():
        return None
    meta = json.loads(document.read_text())
    return meta.get("evaluation", {}).get(meta.get("published_method", "two_tower"), {}).get(GATE_METRIC)


def gate(wh: config.Warehouse, version: str, score: float | None, tolerance: float) -> tuple[bool, str]:
    """(passes, why) for tonight's model against the one in production."""
    production = production_model(wh)
    if production is None:
        return True, "no lists are published yet: nothing to compare with"
    if production == version:
        return True, f"{version} is already the production model"
    reference = published_score(wh, production)
    if reference is None:
        return True, f"production model {production} has no recorded {GATE_METRIC}: nothing to compare with"
    if score is None:
        return False, f"{version} has no held-out {GATE_METRIC} (too few users with two interactions)"
    floor = reference * (1.0 - tolerance)
    verdict = (f"{version} {GATE_METRIC} {score:.4f} against production {production} {reference:.4f} "
               f"(floor {floor:.4f} at tolerance {tolerance:.0%})")
    return score >= floor, verdict


def metric_rows(run_date: str, version: str, evaluation: dict[str, dict], published_method: str) -> pd.DataFrame:
    rows = [(run_date, version, method, metric, float(value), method == published_method)
            for method, metrics in evaluation.items() for metric, value in metrics.items()]
    return pd.DataFrame(rows, columns=["run_date", "model_version", "method", "metric", "value", "is_published"])


def evaluate_run(wh: config.Warehouse, run_date: str, *, tolerance: float = config.DEFAULT_GATE_TOLERANCE,
                 seed: int = config.DEFAULT_SEED) -> dict:
    from jobs.evaluation_report import render

    version = read_counters(wh, run_date).get("train", {}).get("model_version")
    if not version or not (wh.models / version / "model.json").exists():
        raise StageError(STAGE, f"no model trained for {run_date}; run train first")
    meta = json.loads((wh.models / version / "model.json").read_text())
    method = meta.get("published_method", "two_tower")
    # The slice the train stage measured the model on: its seed and sample of users.
    evaluation = {**meta.get("evaluation", {}),
                  **baseline_metrics(wh, meta.get("seed", seed), meta.get("max_eval_users"))}

    tonight = metric_rows(run_date, version, evaluation, method)
    write_arrow_table(pa.Table.from_pandas(tonight, preserve_index=False), wh.model_metrics / run_date, run_date)
    history = read_table(wh.model_metrics).to_pandas()

    score = evaluation.get(method, {}).get(GATE_METRIC)
    passed, verdict = gate(wh, version, score, tolerance)
    verdict = ("passed: " if passed else "BLOCKED: ") + verdict
    report = wh.run_dir(run_date) / "evaluation.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(run_date, version, tonight, history, verdict, meta.get("training", {})))
    print(f"evaluation report: {report}", file=sys.stderr)

    best_baseline = max((m for m in evaluation if not m.startswith("two_tower")),
                        key=lambda m: evaluation[m].get(GATE_METRIC, 0.0), default=None)
    counters = {"model_version": version, "published_method": method, GATE_METRIC: score,
                "hr@10": evaluation.get(method, {}).get("hr@10"), "best_baseline": best_baseline,
                "best_baseline_" + GATE_METRIC: evaluation.get(best_baseline, {}).get(GATE_METRIC),
                "gate_passed": passed, "gate": verdict, "report": str(report)}
    write_counters(wh, run_date, STAGE, counters)
    if not passed:
        raise StageError(STAGE, f"model not published, the previous lists stay current: {verdict}")
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--gate-tolerance", type=float, default=config.DEFAULT_GATE_TOLERANCE,
                        help="largest relative drop in held-out NDCG@10 against production that still publishes")
    parser.add_argument("--seed", type=int, default=config.DEFAULT_SEED)
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: evaluate_run(wh, args.run_date,
                                                                    tolerance=args.gate_tolerance, seed=args.seed))


if __name__ == "__main__":
    sys.exit(main())
