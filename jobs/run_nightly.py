"""Run every stage of the nightly pipeline in order, without Airflow.

    python -m jobs.run_nightly --warehouse DIR --run-date YYYY-MM-DD [--top-n N] [--serving-table s3://bucket/prefix] \
        [--training-mode auto|full|incremental] [--full-refresh]

The same job code the DAG runs, in one process that shares one local SparkSession between the
Spark stages. Exit 0 on success; on failure, exit 1 with one line on stderr naming the stage and
the reason, the last line on stderr (Spark is stopped first; the traceback of an unexpected error
goes to `runs/<run_date>/error.log`). The last line on stdout is the run's counters as one JSON
object.
"""

from __future__ import annotations

import json
import sys
import time
import traceback

from jobs.plumbing import config
from jobs.train import add_training_mode_argument
from jobs.plumbing.stage import (StageError, add_serving_table_argument, add_shared_arguments, base_parser, describe,
                                 fail, preflight, warehouse_at)


def _stages(args, wh: config.Warehouse):
    """(name, callable) for each stage, in order; Spark starts only when a Spark stage needs it."""
    from jobs.erase_users import erase_users
    from jobs.evaluate import evaluate_run
    from jobs.extract_features import extract
    from jobs.ingest import ingest
    from jobs.publish import publish
    from jobs.score import score
    from jobs.plumbing.spark import get_spark
    from jobs.train import train
    from jobs.validate_features import validate_features

    limits = config.decode_limits(timeout_s=args.decode_timeout_s)
    return [
        ("erase_users", lambda: erase_users(wh, args.run_date)),
        ("ingest", lambda: ingest(get_spark("vrec-nightly"), wh, args.run_date, args.max_bad_row_share)),
        ("extract_features", lambda: extract(get_spark("vrec-nightly"), wh, args.run_date,
                                             full_refresh=args.full_refresh, limits=limits)),
        ("validate_features", lambda: validate_features(wh, args.run_date, args.min_coverage)),
        ("train", lambda: train(wh, args.run_date, epochs=args.epochs, seed=args.seed, mode=args.training_mode,
                                full_refresh=args.full_refresh)),
        ("evaluate", lambda: evaluate_run(wh, args.run_date, tolerance=args.gate_tolerance, seed=args.seed)),
        ("score", lambda: score(wh, args.run_date, top_n=args.top_n, model_version=args.model_version)),
        ("publish", lambda: publish(wh, args.run_date, top_n=args.top_n)),
    ]


def keep_traceback(wh: config.Warehouse, run_date: str) -> str:
    """Save the traceback for whoever investigates; where it went, for the error line."""
    log = wh.run_dir(run_date) / "error.log"
    try:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(traceback.format_exc())
    except OSError:  # the warehouse itself may be what failed
        return ""
    return f" (traceback in {log})"


def main(argv: list[str] | None = None) -> int:
    parser = base_parser(__doc__.splitlines()[0])
    add_shared_arguments(parser, "--top-n")
    parser.add_argument("--epochs", type=int, default=config.DEFAULT_EPOCHS,
                        help="most epochs of the first training (early stopping may end it sooner)")
    add_shared_arguments(parser, "--seed")
    parser.add_argument("--full-refresh", action="store_true", help="decode every video again and retrain fully")
    add_training_mode_argument(parser)
    parser.add_argument("--skip-training", action="store_true",
                        help="score with --model-version (default: the production model) instead of training")
    parser.add_argument("--model-version", default=None,
                        help=f"score with this model ({config.PRODUCTION_MODEL!r}: the one serving now)")
    add_shared_arguments(parser, "--min-coverage", "--max-bad-row-share", "--gate-tolerance", "--decode-timeout-s")
    add_serving_table_argument(parser)
    args = parser.parse_args(argv)
    if args.skip_training and not args.model_version:
        args.model_version = config.PRODUCTION_MODEL   # score with the model that serves now
    try:
        wh = warehouse_at("run_nightly", args.warehouse, args.serving_table)
        preflight(wh)
    except StageError as err:
        return fail(str(err))

    from jobs.report import run_summary

    for name, run in _stages(args, wh):
        if name in ("train", "evaluate") and args.skip_training:
            continue
        started = time.perf_counter()
        try:
            run()
        except StageError as err:
            return fail(str(err))
        except Exception as err:  # noqa: BLE001 -- any failure must end as one clear line, not a dump
            return fail(f"[{name}] {describe(err, wh)}{keep_traceback(wh, args.run_date)}")
        print(f"stage {name} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    print(json.dumps(run_summary(wh, args.run_date), sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
