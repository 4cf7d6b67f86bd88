"""Benchmark how far apart two full retrains of the same night are: the yardstick of bench_nights.

    python -m jobs.bench.bench_seed_noise [--dataset movielens-100k|load] [--seeds 7 8] [--periods 8]
                                          [--night-days D] [--workdir DIR] [--out docs/bench/nights_seed_noise.json]

`make bench-nights` compares each incremental night with one full retrain of the same night. A
full retrain is itself one draw: another seed orders the examples and initialises the weights
differently, and its early stopping may pick another epoch. This replays the same history and
nights as `jobs.bench.bench_nights` (same data, same cuts, `--night-days` too, same stages, SASRec
off) with `--training-mode full` in two warehouses that differ only in `--seed`, and records per
night each one's next-period NDCG@10 and the second's over the first's, with the same 90% paired
bootstrap interval over users. Nights 2 to `--periods` - 1 are replayed: those `auto` trains
incrementally. A ratio far from 1 here means no training mode can be held to a few percent of one
full retrain on that night.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import tempfile
from pathlib import Path

from jobs.bench.bench_nights import (FIRST_NIGHT, add_history_arguments, compare_next_periods, history, land_history,
                                    next_period, run_night)
from jobs.plumbing import config
from jobs.plumbing.serving import production_model
from jobs.plumbing.stage import write_json


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_history_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs=2, default=(config.DEFAULT_SEED, config.DEFAULT_SEED + 1))
    parser.add_argument("--periods", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the warehouses here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-seed-noise-"))
    env = {**os.environ, "VREC_EVAL_SEQUENTIAL": "0"}
    first, second = args.seeds
    warehouses = {seed: workdir / f"seed{seed}" for seed in args.seeds}
    landing = [land_history(warehouse, args) for warehouse in warehouses.values()][0]
    whole = workdir / f"history{landing.suffix}"
    whole.write_bytes(landing.read_bytes())
    try:
        everything, seconds, ratings, edges = history(whole, args.periods, args.night_days)
    except ValueError as err:
        parser.error(str(err))

    nights = []
    for k in range(1, args.periods - 1):
        run_date = (FIRST_NIGHT + dt.timedelta(days=k)).isoformat()
        seen = everything[seconds.to_numpy() < edges[k]]
        record, rows = {"night": k + 1, "run_date": run_date, "interactions": len(seen)}, {}
        for seed, warehouse in warehouses.items():
            target = warehouse / "landing" / "interactions" / landing.name
            seen.to_csv(target, index=False) if landing.suffix == ".csv" else seen.to_parquet(target, index=False)
            run_night(warehouse, run_date, "full", seed, env)
            serving = production_model(config.Warehouse.at(warehouse))
            record[f"seed_{seed}"], rows[seed] = next_period(warehouse, serving, ratings, edges[k], edges[k + 1])
        ratio = compare_next_periods(rows[second], rows[first])
        record["ndcg@10_ratio"] = ratio.get("auto_to_full_ndcg@10")
        record["ndcg@10_ratio_interval90"] = ratio.get("auto_to_full_ndcg@10_interval90")
        print(f"night {k + 1}: seed {first} {record[f'seed_{first}']['ndcg@10']}, seed {second} "
              f"{record[f'seed_{second}']['ndcg@10']}, ratio {record['ndcg@10_ratio']} "
              f"(90% {record['ndcg@10_ratio_interval90']})", flush=True)
        nights.append(record)

    result = {"dataset": args.dataset, "periods": args.periods, "night_days": args.night_days,
              "seeds": list(args.seeds), "nights": nights,
              "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.python_version()}",
              "settings": {"eval_min_users": config.DEFAULT_EVAL_MIN_USERS}}
    if args.out:
        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
