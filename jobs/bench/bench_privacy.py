"""Benchmark the privacy settings: MovieLens-100k nights with the settings off and on.

    python -m jobs.bench.bench_privacy [--source ../shared/data/movielens-100k] [--rounds 2] [--out FILE]
                                       [--workdir DIR]

Imports MovieLens-100k into two warehouses and runs `python -m jobs.run_nightly` on each in turn
(off, on, off, on, ...; alternating spreads a shared machine's load over both), each night a
process of its own, run date 2026-11-20, top 20, SASRec off unless VREC_EVAL_SEQUENTIAL says otherwise. "On": `VREC_PSEUDONYMISE=1` with a key file
outside the warehouse, `VREC_INTERACTION_RETENTION_DAYS=36500` (the ratings are from 1997-98: a
shorter retention would drop them and time a smaller night), and before each night a deletion
request for one user (`jobs.forget_user`): from the second round on the erasure also rewrites
the serving table, cuts its history and edits the saved models. Prints each night's seconds and
per-stage seconds, the seconds of the modality ablation (train) and of the explanations (score)
inside each night, and the ratio of the on to the off total; `--out` writes JSON.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jobs.plumbing import config
from jobs.plumbing.stage import read_counters, write_json

DEFAULT_SOURCE = Path(__file__).resolve().parents[3] / "shared" / "data" / "movielens-100k"
RUN_DATE = "2026-11-20"
STAGE_LINE = re.compile(r"^stage (\w+) done in ([\d.]+)s$")
ABLATION_LINE = re.compile(r"^modality ablation in ([\d.]+)s")


def _night(warehouse: Path, env: dict[str, str]) -> dict:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "jobs.run_nightly", "--warehouse", str(warehouse),
                           "--run-date", RUN_DATE, "--top-n", "20"], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"bench_privacy: the night failed: {done.stderr.strip().splitlines()[-1]}")
    stages = {m.group(1): float(m.group(2)) for m in map(STAGE_LINE.match, done.stderr.splitlines()) if m}
    # What the explanations and the modality ablation cost inside the night (not a setting: always on).
    ablation = [float(m.group(1)) for m in map(ABLATION_LINE.match, done.stderr.splitlines()) if m]
    explain = read_counters(config.Warehouse.at(warehouse), RUN_DATE).get("score", {}).get("explain_seconds")
    return {"seconds": round(seconds, 1), "stages": stages,
            "ablation_seconds": ablation[0] if ablation else None, "explain_seconds": explain}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep the warehouses here (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench-privacy-"))
    workdir.mkdir(parents=True, exist_ok=True)
    key = workdir / "pseudonym.key"
    key.write_text(os.urandom(32).hex() + "\n")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VREC_PSEUDONYM", "VREC_INTERACTION_RETENTION"))}
    # Without SASRec (as tests/test_movielens.py): its minutes of training would dilute the ratio.
    base.setdefault("VREC_EVAL_SEQUENTIAL", "0")
    settings = {
        "off": base,
        "on": {**base, "VREC_PSEUDONYMISE": "1", "VREC_PSEUDONYM_KEY_FILE": str(key),
               "VREC_INTERACTION_RETENTION_DAYS": "36500"},
    }
    for name in settings:
        subprocess.run([sys.executable, "-m", "jobs.import_dataset", "--format", "movielens-100k", "--source",
                        str(args.source), "--warehouse", str(workdir / name)], check=True, capture_output=True)
    nights: dict[str, list[dict]] = {"off": [], "on": []}
    for round_ in range(args.rounds):
        for name, env in settings.items():
            if name == "on":
                subprocess.run([sys.executable, "-m", "jobs.forget_user", "--warehouse", str(workdir / name),
                                "--user-id", str(round_ + 1)], check=True, capture_output=True, env=env)
            load = os.getloadavg()[0]
            result = {"round": round_ + 1, "load_average_before": round(load, 2), **_night(workdir / name, env)}
            nights[name].append(result)
            print(f"round {round_ + 1} {name:>3}: {result['seconds']:7.1f} s  (load {load:.1f})  {result['stages']}  "
                  f"ablation {result['ablation_seconds']} s, explanations {result['explain_seconds']} s", flush=True)
            if args.out:   # after every night, so a stopped benchmark keeps what it measured
                _write(args.out, nights)
    total = {name: sum(n["seconds"] for n in runs) for name, runs in nights.items()}
    print(f"total off {total['off']:.1f} s, on {total['on']:.1f} s: on/off = {total['on'] / total['off']:.3f}")
    return 0


def _write(out: Path, nights: dict[str, list[dict]]) -> None:
    rounds = min(len(runs) for runs in nights.values())
    total = {name: sum(n["seconds"] for n in runs[:rounds]) for name, runs in nights.items()}
    write_json(out, {"nights": nights, "complete_rounds": rounds, "total_seconds": total,
                     "ratio_on_off": round(total["on"] / total["off"], 3) if rounds else None,
                     "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                                 "processor": platform.processor() or platform.machine()}})


if __name__ == "__main__":
    sys.exit(main())
