"""Evaluate: tonight's model against the baselines, a metrics table, a report, and the gate.

    python -m jobs.evaluate --warehouse DIR --run-date YYYY-MM-DD [--gate-tolerance 0.25]

On the same held-out slice the train stage measured the model on (each user's most recent
interaction), fits and measures most popular, item-kNN, ALS and BPR, the last three with settings
tuned on a validation slice of the training data (each user's last training interaction held out
again; an incremental night fits the settings tuned on the night of the full retrain it descends
from instead of tuning again), and on small logs (or with VREC_EVAL_SEQUENTIAL=1) the sequential
baseline SASRec, its epochs chosen on the same validation slice. Writes `tables/model_metrics/<run_date>/` (one row per
method and metric, the tuned settings and validation NDCG@10 included; the model's modality
ablation and the re-ranker's feature gain, measured by the train stage, as rows of their own) and
the HTML report `runs/<run_date>/evaluation.html` with the tuning grid and the ablation. Then the
gate: when tonight's model is clearly worse than the one whose lists are being served (its held-out
NDCG@10 more than the tolerance below; for an incremental night, the exam's whole 90% interval of
the ratio to production below 1 - tolerance), the stage fails, nothing is scored or published, and
the previous lists stay current.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field

import pandas as pd
import pyarrow as pa

from jobs.plumbing import config
from jobs.plumbing.evaluation_report import ABLATION_PREFIX, RANKER_GAIN, is_diagnostic
from jobs.plumbing.model_inputs import load_model_inputs
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import StageError, add_shared_arguments, base_parser, read_counters, run_stage, write_counters
from jobs.plumbing.tables import read_table, write_arrow_table

STAGE = "evaluate"
GATE_METRIC = "ndcg@10"
VALIDATION_METRIC = "validation_ndcg@10"


@dataclass
class BaselineEvaluation:
    metrics: dict[str, dict]                               # method -> held-out metrics (and tuning facts)
    tuning: dict[str, dict] = field(default_factory=dict)  # method -> grid, choice, seconds
    sequential: dict = field(default_factory=dict)         # SASRec's facts, or why it did not run
    seconds: float = 0.0


def sequential_runs(n_interactions: int) -> tuple[bool, str]:
    """(whether SASRec runs tonight, why): VREC_EVAL_SEQUENTIAL=1/0 decides, else the log's size."""
    if config.EVAL_SEQUENTIAL == "1":
        return True, "VREC_EVAL_SEQUENTIAL=1"
    if config.EVAL_SEQUENTIAL == "0":
        return False, "VREC_EVAL_SEQUENTIAL=0"
    limit = config.DEFAULT_SEQUENTIAL_MAX_INTERACTIONS
    if n_interactions <= limit:
        return True, f"{n_interactions} training interactions, at most {limit}"
    return False, f"{n_interactions} training interactions, more than {limit} (VREC_EVAL_SEQUENTIAL=1 forces it)"


def evaluate_baselines(wh: config.Warehouse, seed: int, max_eval_users: int | None, *,
                       tune: bool | None = None, exam_cutoff: float | None = None, reuse: dict | None = None,
                       log=print) -> BaselineEvaluation:
    """Every baseline on the held-out slice of `leave_last_out(all interactions, max_eval_users, seed)`,
    or with `exam_cutoff` on that of `after_cutoff` (an incremental night's exam). `reuse`: an
    earlier night's tuning records (method -> record), whose chosen settings are fit instead of
    tuning again."""
    from models.baselines import fit_baselines, tune_baselines
    from models.evaluation import after_cutoff, evaluate, leave_last_out

    started = time.perf_counter()
    tune = config.DEFAULT_TUNE_BASELINES if tune is None else tune
    inputs = load_model_inputs(wh)
    n_users, n_items = len(inputs.user_ids), len(inputs.video_ids)
    holdout = leave_last_out(inputs.data, n_items, max_eval_users, seed) if exam_cutoff is None else \
        after_cutoff(inputs.data, n_items, exam_cutoff, max_eval_users, seed)
    # The validation slice: each user's last training interaction, as models/fit.py's re-ranker slice.
    validation_users = min(max_eval_users or config.DEFAULT_TUNING_EVAL_USERS, config.DEFAULT_TUNING_EVAL_USERS)
    validation = leave_last_out(holdout.train, n_items, validation_users, seed)
    if not len(validation.users):
        log("no user has two training interactions: the baselines keep their usual settings, no SASRec")
    tune = tune and len(validation.users) > 0
    if tune and reuse:
        records = reuse
        log("baselines: the settings tuned on " + ", ".join(sorted({r["tuned_on"] for r in reuse.values()})))
    else:
        tuned = tune_baselines(validation, n_users, n_items, seed=seed, log=log) if tune else {}
        records = {name: t.as_record() for name, t in tuned.items()}
    metrics = fit_baselines(holdout.train, n_users, n_items, seed=seed,
                            settings={name: record["chosen"] for name, record in records.items()},
                            measure=lambda scorer: evaluate(scorer, holdout, n_users, n_items))
    for name, record in records.items():
        metrics[name][VALIDATION_METRIC] = max(point["validation_ndcg@10"] for point in record["grid"])
        metrics[name].update({f"setting_{key}": float(value) for key, value in record["chosen"].items()})
    result = BaselineEvaluation(metrics, records)

    runs, why = sequential_runs(len(holdout.train))
    if runs and not len(validation.users):
        runs, why = False, "no validation slice to choose its epochs on"
    if runs:
        from models.sasrec import SASRecConfig, fit_sasrec

        cfg = SASRecConfig(max_len=config.DEFAULT_SASREC_MAX_LEN, loss=config.DEFAULT_SASREC_LOSS,
                           threads=config.DEFAULT_SASREC_THREADS)
        scorer, facts = fit_sasrec(validation, holdout.train, n_users, n_items, cfg, seed=seed, log=log,
                                   fine_tune_epochs=config.DEFAULT_SASREC_FINE_TUNE_EPOCHS or None)
        metrics["sasrec"] = {**evaluate(scorer, holdout, n_users, n_items),
                             VALIDATION_METRIC: facts["validation_ndcg@10"] or 0.0,
                             "best_epoch": float(facts["best_epoch"]), "train_seconds": facts["train_seconds"],
                             "setting_max_len": float(cfg.max_len)}
        log(f"sasrec: held-out NDCG@10 {metrics['sasrec']['ndcg@10']:.4f}, {facts['best_epoch']} epochs, "
            f"trained in {facts['train_seconds']:.1f}s")
        result.sequential = {**facts, "ran": True, "why": why}
    else:
        log(f"sasrec skipped: {why}")
        result.sequential = {"ran": False, "why": why}
    result.seconds = round(time.perf_counter() - started, 2)
    return result


def baseline_metrics(wh: config.Warehouse, seed: int, max_eval_users: int | None) -> dict[str, dict]:
    """Method -> held-out metrics of every baseline (see evaluate_baselines)."""
    return evaluate_baselines(wh, seed, max_eval_users).metrics


def _model_document(wh: config.Warehouse, version: str) -> dict | None:
    document = wh.models / version / "model.json"
    return json.loads(document.read_text()) if document.exists() else None


def lineage_tuning(wh: config.Warehouse, version: str) -> dict | None:
    """The baseline tuning of the night that evaluated the full retrain `version` descends from
    (method -> record, each with `tuned_on`: that run date), or None when no such night is found."""
    _, full_version = leave_last_out_score(wh, version)
    for counters in sorted(wh.runs.glob(f"*/{STAGE}.json"), reverse=True):
        evaluated = json.loads(counters.read_text())
        if evaluated.get("model_version") == full_version and evaluated.get("baseline_tuning"):
            tuning = evaluated["baseline_tuning"]
            return {name: {**record, "tuned_on": record.get("tuned_on", counters.parent.name)}
                    for name, record in tuning.items()}
    return None


def published_evaluation(meta: dict) -> dict:
    """The held-out metrics of the method a model document says it publishes."""
    return meta.get("evaluation", {}).get(meta.get("published_method", "two_tower"), {})


def published_score(meta: dict) -> float | None:
    """The gate metric of the method a model document says it publishes."""
    return published_evaluation(meta).get(GATE_METRIC)


def leave_last_out_score(wh: config.Warehouse, version: str) -> tuple[float | None, str]:
    """(the leave-last-out gate metric of `version`'s lineage, the model that scored it): its own,
    or for an incremental model that of the full retrain it descends from."""
    meta = _model_document(wh, version)
    while meta is not None and meta.get("evaluation_protocol", "leave_last_out") != "leave_last_out":
        meta = _model_document(wh, meta.get("parent_version") or "")
    if meta is None:
        return None, version
    return published_score(meta), meta["model_version"]


def gate(wh: config.Warehouse, version: str, meta: dict, tolerance: float) -> tuple[bool, str]:
    """(passes, why) for tonight's model against the one in production, compared on the same
    protocol: an incremental model and its parent on tonight's exam (both measured by the train
    stage); a full retrain against the leave-last-out score of production's lineage."""
    production = production_model(wh)
    if production is None:
        return True, "no lists are published yet: nothing to compare with"
    if production == version:
        return True, f"{version} is already the production model"
    score = published_score(meta)
    if meta.get("evaluation_protocol") == "after_cutoff":
        if meta.get("parent_version") != production:
            return False, (f"{version} was trained from {meta.get('parent_version')}, but {production} serves now; "
                           "train again")
        reference, scored_by, protocol = meta["evaluation"]["production"].get(GATE_METRIC), production, \
            "on tonight's exam (after-cutoff)"
    else:
        (reference, scored_by), protocol = leave_last_out_score(wh, production), "leave-last-out"
    if reference is None:
        return True, f"production model {production} has no recorded {GATE_METRIC}: nothing to compare with"
    if score is None:
        return False, f"{version} has no held-out {GATE_METRIC} (too few users to measure it on)"
    floor = reference * (1.0 - tolerance)
    against = production if scored_by == production else f"{production} (its full retrain {scored_by})"
    verdict = (f"{version} {GATE_METRIC} {score:.4f} against production {against} {reference:.4f} {protocol} "
               f"(floor {floor:.4f} at tolerance {tolerance:.0%}){exam_certainty(meta)}")
    if score >= floor:
        return True, verdict
    if surely_below_floor(meta, tolerance):
        return False, verdict
    return True, verdict + ": below the floor, but not surely (the interval reaches above it): published"


def surely_below_floor(meta: dict, tolerance: float) -> bool:
    """Whether the exam is sure tonight's model is below the floor: the whole 90% interval of its
    ratio to production under 1 - tolerance. Where no interval was measured (a full night,
    compared on leave-last-out over every user), the ratio itself decides.

    An incremental night's exam can be small (VREC_EVAL_MIN_USERS users), and on 30 users the
    ratio swings by tens of percent between two trainings of the same night: on MovieLens-100k's
    12-day replay the gate stopped the first incremental night of both seeds on the ratio alone
    (0.62 and 0.64 of production, intervals 0.28-0.81 and 0.41-0.90), and the stopped model of
    seed 8 would have scored 0.99 of a full retrain on the next period, where the model kept in
    its place scored 0.83. A model trained on random interactions is surely below it (its upper
    end under 0.75 on a 100-user exam, tests/test_incremental_training.py).
    """
    high = published_evaluation(meta).get(GATE_METRIC + "_to_production_high")
    return high is None or high < 1.0 - tolerance


def exam_certainty(meta: dict) -> str:
    """How sure tonight's exam is of the ratio to production (an incremental night's train stage
    measures it), for whoever decides whether to rerun with another tolerance; "" when unmeasured."""
    published = published_evaluation(meta)
    low, high = published.get(GATE_METRIC + "_to_production_low"), published.get(GATE_METRIC + "_to_production_high")
    if low is None or high is None:
        return ""
    users = meta.get("training", {}).get("exam_users")
    return (f"; the exam{f' of {users} users' if users else ''} puts the ratio to production between "
            f"{low:.2f} and {high:.2f} (90% paired bootstrap)")


def metric_rows(run_date: str, version: str, evaluation: dict[str, dict], published_method: str) -> pd.DataFrame:
    rows = [(run_date, version, method, metric, float(value), method == published_method)
            for method, metrics in evaluation.items() for metric, value in metrics.items()]
    return pd.DataFrame(rows, columns=["run_date", "model_version", "method", "metric", "value", "is_published"])


def evaluate_run(wh: config.Warehouse, run_date: str, *, tolerance: float = config.DEFAULT_GATE_TOLERANCE,
                 seed: int = config.DEFAULT_SEED) -> dict:
    from jobs.plumbing.evaluation_report import LEAVE_LAST_OUT, after_cutoff_protocol, render

    version = read_counters(wh, run_date).get("train", {}).get("model_version")
    if not version or not (wh.models / version / "model.json").exists():
        raise StageError(STAGE, f"no model trained for {run_date}; run train first")
    meta = json.loads((wh.models / version / "model.json").read_text())
    method = meta.get("published_method", "two_tower")
    # The slice the train stage measured the model on: its seed and sample of users.
    # An incremental night reuses the baselines' settings tuned on its full retrain's night, as a
    # team would between weekly tunings: at platform size the tuning takes minutes.
    incremental = meta.get("exam_cutoff") is not None
    baselines = evaluate_baselines(wh, meta.get("seed", seed), meta.get("max_eval_users"),
                                   exam_cutoff=meta.get("exam_cutoff"),
                                   reuse=lineage_tuning(wh, version) if incremental else None,
                                   log=lambda line: print(line, file=sys.stderr))
    evaluation = {**meta.get("evaluation", {}), **baselines.metrics}
    diagnostics = {**{ABLATION_PREFIX + m: metrics for m, metrics in meta.get("ablation", {}).items()},
                   **({RANKER_GAIN: meta["ranker_gain"]} if meta.get("ranker_gain") else {})}

    tonight = metric_rows(run_date, version, {**evaluation, **diagnostics}, method)
    write_arrow_table(pa.Table.from_pandas(tonight, preserve_index=False), wh.model_metrics / run_date, run_date)
    history = read_table(wh.model_metrics).to_pandas()

    score = published_score(meta)
    passed, verdict = gate(wh, version, meta, tolerance)
    verdict = ("passed: " if passed else "BLOCKED: ") + verdict
    report = wh.run_dir(run_date) / "evaluation.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(render(run_date, version, tonight, history, verdict, meta.get("training", {}),
                             tuning=baselines.tuning, sequential=baselines.sequential,
                             ranker_used=method == "two_tower_ranker",
                             protocol=LEAVE_LAST_OUT if not incremental else
                             after_cutoff_protocol(meta["window"]["end_utc"], meta.get("parent_version"))))
    print(f"evaluation report: {report}", file=sys.stderr)

    best_baseline = max((m for m in evaluation
                         if not m.startswith("two_tower") and m != "production" and not is_diagnostic(m)),
                        key=lambda m: evaluation[m].get(GATE_METRIC, 0.0), default=None)
    counters = {"model_version": version, "published_method": method, GATE_METRIC: score,
                "hr@10": evaluation.get(method, {}).get("hr@10"), "best_baseline": best_baseline,
                "best_baseline_" + GATE_METRIC: evaluation.get(best_baseline, {}).get(GATE_METRIC),
                "gate_passed": passed, "gate": verdict, "report": str(report),
                "evaluation_protocol": meta.get("evaluation_protocol", "leave_last_out"),
                "training_mode": meta.get("training_mode", "full"),
                "baseline_seconds": baselines.seconds, "baseline_tuning": baselines.tuning,
                "sasrec": baselines.sequential,
                "ablation": meta.get("ablation", {})}
    write_counters(wh, run_date, STAGE, counters)
    if not passed:
        raise StageError(STAGE, f"model not published, the previous lists stay current: {verdict}")
    return counters


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--gate-tolerance", "--seed")
    args = parser.parse_args(argv)
    return run_stage(STAGE, args.warehouse, lambda wh: evaluate_run(wh, args.run_date,
                                                                    tolerance=args.gate_tolerance, seed=args.seed))


if __name__ == "__main__":
    sys.exit(main())
