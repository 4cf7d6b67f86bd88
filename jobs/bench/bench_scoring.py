"""Benchmark blocked top-N scoring against a bare matrix multiply of the same sizes.

    python -m jobs.bench.bench_scoring [--users 100000] [--items 50000] [--dim 64] [--top 100] [--out FILE]
    python -m jobs.bench.bench_scoring --spark [--users 20000] [--items 5000] [--out FILE]

Random unit vectors, 20 seen videos per user. Each measurement runs in its own process (so peak
memory is its own), best of 3 runs: the project's blocked top-N (`models.topn.top_n` over `models.scoring.TowerVectors`:
scores, seen videos excluded, top 100 per user) and references that compute the same scores in
blocks and throw them away: NumPy's `U_block @ I.T`, and torch's `mm` into a reused buffer (the
fastest bare product found here) at several block sizes, the fastest of which is the reference.
Prints a table and the machine; `--out` writes JSON.

With `--spark` (default sizes 5,000 x 2,000, which the crossJoin finishes in minutes on 2 cores),
it times the Spark engine of `jobs.plumbing.spark_scoring` (users as partitions, item vectors broadcast,
`models.candidate_lists` per partition, no re-ranker) against the crossJoin-and-window query, both written to Spark's `noop`
sink in one local SparkSession, after an untimed warm-up of each on 200 users.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np

from jobs.plumbing.stage import write_json

SEEN_PER_USER = 20
MATMUL_BLOCKS = (64, 128, 256, 512, 2048)
REPEATS = 3   # each figure is the best of 3 runs: the machine is shared, noise only adds time


def _vectors(users: int, items: int, dim: int):
    rng = np.random.default_rng(0)
    u = rng.standard_normal((users, dim), dtype=np.float32)
    i = rng.standard_normal((items, dim), dtype=np.float32)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    i /= np.linalg.norm(i, axis=1, keepdims=True)
    seen = rng.integers(0, items, size=users * SEEN_PER_USER)
    return u, i, np.arange(0, (users + 1) * SEEN_PER_USER, SEEN_PER_USER), seen


def _measure(kind: str, block_size: int, users: int, items: int, dim: int, top: int, queue) -> None:
    import torch

    from models.scoring import TowerVectors
    from models.topn import top_n

    u, i, indptr, seen = _vectors(users, items, dim)
    if kind == "blocked_top_n":   # compile (or load) the selection kernel outside the timing
        top_n(TowerVectors(u[:2], i), 2, np.zeros(3, np.int64), seen[:0], top)
    def run() -> None:
        if kind == "blocked_top_n":
            top_n(TowerVectors(u, i), users, indptr, seen, top, block_size=block_size)
        elif kind == "numpy_matmul":
            for begin in range(0, users, block_size):
                _ = u[begin:begin + block_size] @ i.T
        else:
            out, items_t = torch.empty(block_size, items), torch.from_numpy(np.ascontiguousarray(i.T))
            for begin in range(0, users, block_size):
                block = torch.from_numpy(u[begin:begin + block_size])
                torch.mm(block, items_t, out=out[:len(block)])

    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    seconds = min(times)
    queue.put((seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20))


def measure(kind: str, block_size: int, users: int, items: int, dim: int, top: int) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_measure, args=(kind, block_size, users, items, dim, top, queue))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"the {kind} measurement failed (exit code {process.exitcode})")
    seconds, peak_gib = queue.get(timeout=10)
    return {"seconds": round(seconds, 2), "peak_rss_gib": round(peak_gib, 2), "block": block_size}


def spark_comparison(users: int, items: int, dim: int, top: int) -> dict:
    from jobs.plumbing.spark import get_spark
    from jobs.plumbing.spark_scoring import crossjoin_top_n, spark_candidate_lists, users_frame
    from models.candidate_lists import ScoringModel, Users
    from models.scoring import ItemVectors

    spark = get_spark("vrec-bench-scoring")
    partitions = 2 * (os.cpu_count() or 1)
    u, i, indptr, seen = _vectors(users, items, dim)
    user_ids = np.array([str(n) for n in range(users)], object)
    video_ids = np.array([str(n) for n in range(items)], object)

    def timed(query, n_users: int) -> float:
        frame = users_frame(spark, user_ids[:n_users], Users(u[:n_users], indptr[:n_users + 1], seen),
                            partitions).cache()
        frame.count()
        started = time.perf_counter()
        query(frame).write.format("noop").mode("overwrite").save()
        seconds = time.perf_counter() - started
        frame.unpersist()
        return seconds

    paths = {"spark_blocked_top_n": lambda frame: spark_candidate_lists(frame, ScoringModel(ItemVectors(i)),
                                                                         video_ids, top),
             "spark_crossjoin_window": lambda frame: crossjoin_top_n(spark, frame, i, video_ids, top)}
    results = {}
    for name, query in paths.items():
        timed(query, 200)
        results[name] = {"seconds": round(timed(query, users), 2)}
    results["crossjoin_over_blocked"] = round(results["spark_crossjoin_window"]["seconds"]
                                              / results["spark_blocked_top_n"]["seconds"], 1)
    return results


def measure_products(users: int, items: int, dim: int, top: int) -> dict:
    """The blocked top-N and the bare products, each in its own process."""
    from models.topn import DEFAULT_BLOCK

    results = {kind: measure(kind, DEFAULT_BLOCK, users, items, dim, top) for kind in ("blocked_top_n", "numpy_matmul")}
    torch_runs = [measure("torch_matmul", block, users, items, dim, top) for block in MATMUL_BLOCKS]
    results["torch_matmul_by_block"] = torch_runs
    results["torch_matmul"] = min(torch_runs, key=lambda run: run["seconds"])
    for reference in ("numpy_matmul", "torch_matmul"):
        results[f"ratio_to_{reference}"] = round(results["blocked_top_n"]["seconds"] / results[reference]["seconds"], 2)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spark", action="store_true", help="compare the Spark path with a crossJoin query")
    parser.add_argument("--users", type=int)
    parser.add_argument("--items", type=int)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--top", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.users = args.users or (5_000 if args.spark else 100_000)
    args.items = args.items or (2_000 if args.spark else 50_000)
    sizes = (args.users, args.items, args.dim, args.top)
    if args.spark:
        results = spark_comparison(*sizes)
        print(json.dumps(results, indent=1))
    else:
        results = measure_products(*sizes)
        print("| run | block | seconds | peak RSS GiB |\n|---|---|---|---|")
        for kind, run in [(kind, results[kind]) for kind in ("blocked_top_n", "numpy_matmul")] + \
                [("torch_matmul", run) for run in results["torch_matmul_by_block"]]:
            print(f"| {kind} | {run['block']} | {run['seconds']} | {run['peak_rss_gib']} |")
        print(f"ratio to numpy matmul {results['ratio_to_numpy_matmul']}, "
              f"to the fastest torch matmul {results['ratio_to_torch_matmul']}")
    results["sizes"] = dict(zip(("users", "items", "dim", "top"), sizes))
    results["machine"] = (f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
                          f"Python {platform.python_version()}")
    if args.out:
        write_json(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
