# The two set-up commands are `make demo` and `make test`; each installs what it needs first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
RUN_DATE ?= 2026-11-20
TOP_N ?= 10
SEED ?= 7

# Everything below runs with the project's interpreter, its spark-submit and its airflow.
export PATH := $(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)
export PYSPARK_PYTHON := $(PY)
export PYSPARK_DRIVER_PYTHON := $(PY)
export VREC_PYTHON := $(PY)
export VREC_WAREHOUSE ?= $(CURDIR)/warehouse
export AIRFLOW_HOME ?= $(CURDIR)/.airflow
export AIRFLOW__CORE__DAGS_FOLDER := $(CURDIR)/dags
export AIRFLOW__CORE__LOAD_EXAMPLES := False
export AIRFLOW__CORE__UNIT_TEST_MODE := False
export AIRFLOW_CONN_SPARK_DEFAULT ?= {"conn_type": "spark", "host": "local[*]"}
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: dist cluster help install system-deps browser-deps venv airflow-init airflow demo-data demo test test-quick bench bench-features bench-training bench-scoring bench-text bench-load bench-sparse bench-privacy bench-nights bench-seed-noise show clean

help:
	@echo "make demo   - install, generate a demo landing zone, run the DAG once, show lists"
	@echo "make test   - install and run the whole test suite"
	@echo "make cluster - a Spark standalone cluster on 127.0.0.1 (master + 2 workers) until Ctrl-C"
	@echo "make dist   - the project archive Spark ships to executors (dist/video_recs-<version>.zip)"
	@echo "make airflow - the Airflow UI on localhost:8080 with the project's DAGs"
	@echo "make bench  - install and run the benchmarks (results in docs/bench/); run on an idle machine"

install: system-deps venv

# Headless Chromium and its driver from Debian for the Airflow UI test (nothing is downloaded by
# the test itself).
browser-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }

# ffmpeg comes from Debian; Java 17 is expected on the machine (Spark needs it).
system-deps:
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg; }
	@command -v java >/dev/null || { echo "Java 17 is required by Spark (apt-get install openjdk-17-jre-headless)"; exit 1; }

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q -r requirements.txt
	touch $@

# A SQLite metadata DB for `airflow dags test` and `airflow standalone`, plus the gpu pool.
airflow-init: venv
	airflow db migrate >/dev/null
	airflow pools set gpu 1 "GPU training nodes" >/dev/null

# The Airflow UI on http://localhost:8080 with the project's DAGs (simple auth manager: one admin
# user; its password is generated on the first start and kept in AIRFLOW_HOME).
airflow: install airflow-init
	@echo "Airflow UI: http://localhost:8080  user: admin  password: in $(AIRFLOW_HOME)/simple_auth_manager_passwords.json.generated"
	AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=admin:admin airflow standalone

demo-data: install
	$(PY) -m jobs.datasets.make_demo_data --warehouse $(VREC_WAREHOUSE) --seed $(SEED) --run-date $(RUN_DATE)

demo: install airflow-init demo-data
	airflow dags test video_recs_nightly $(RUN_DATE) \
	  -c '{"warehouse": "$(VREC_WAREHOUSE)", "top_n": $(TOP_N)}' > $(VREC_WAREHOUSE)/dag_test.log 2>&1 || \
	  { tail -n 40 $(VREC_WAREHOUSE)/dag_test.log; exit 1; }
	$(PY) -m jobs.show_recommendations --warehouse $(VREC_WAREHOUSE) --users 3

show: venv
	$(PY) -m jobs.show_recommendations --warehouse $(VREC_WAREHOUSE) --users 3

# The project archive the Spark stages ship to executors (py_files): dist/video_recs-<version>.zip.
# The DAG's package task builds its own copy per run; this one is for spark-submit by hand.
dist: venv
	$(PY) -m jobs.package --out $(CURDIR)/dist

# A Spark standalone master and two one-core workers on 127.0.0.1 until Ctrl-C (conf, event logs
# and logs in .cluster/); it prints the master URL and the connection for the DAG.
cluster: venv
	$(PY) -m jobs.local_cluster --workers 2 --dir $(CURDIR)/.cluster

# The suite's files run in TEST_WORKERS processes (pytest-xdist; a file's tests stay together, so
# its module fixtures, such as a DAG night several tests read, run once). 0 runs them in this one.
# xdist's own order (files with more tests first) leaves test_movielens.py, one test, to the end,
# where it trains alone; starting the longest files first made a 31-minute suite (2026-12-06), when
# a training beside another took 4 to 7 times as long as alone: OpenMP's waiting threads spun on the
# core the other process needed. tests/conftest.py now has them sleep when the files run in parallel.
TEST_WORKERS ?= 2

test: install browser-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=25 tests

test-quick: install
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m "not slow" tests

# Benchmarks: one target per part, each writing docs/bench/<part>.json. `bench` runs extraction,
# training, scoring, text, the simulated nights and the load night (about 3 hours idle);
# bench-sparse, bench-privacy and bench-seed-noise run on their own.
BENCH_DIR := $(CURDIR)/docs/bench

bench: bench-features bench-training bench-scoring bench-text bench-nights bench-load

# Feature extraction vs a plain `ffmpeg -f null` decode of ../shared/data/media, on one core and on
# all cores (~3 min on 2 cores); exits 1 when the one-core ratio is above 0.8, after writing the JSON.
bench-features: install
	$(PY) -m jobs.bench.bench_features --out $(BENCH_DIR)/features.json --check

# Two-tower training on MovieLens-100k: examples/s, s/epoch and the whole nightly fit (~1 min on 2 cores).
bench-training: install
	$(PY) -m jobs.bench.bench_training --out $(BENCH_DIR)/training.json

# Blocked top 100 for 100,000 users x 50,000 videos x 64 dims against bare matrix products (~1 min),
# then the Spark path against a crossJoin-and-window query at 5,000 x 2,000 (~5 min).
bench-scoring: install
	$(PY) -m jobs.bench.bench_scoring --out $(BENCH_DIR)/scoring.json
	$(PY) -m jobs.bench.bench_scoring --spark --out $(BENCH_DIR)/scoring_spark.json

# The text embedding as it was (float32) against features.text.TextEmbedder (int8 on a CPU with
# VNNI, else bfloat16 where the CPU has it) on the MovieLens-100k items and 1,000 load-style texts,
# 2 torch threads, in one process (~3 min on 2 cores). It records the ratio and exits 1 when the
# ratio is under 3 or a cosine under 0.99 (`--check`), after writing the JSON.
bench-text: install
	$(PY) -m jobs.bench.bench_text --out $(BENCH_DIR)/text_embedding.json --check

# Histories replayed as 8 nights, each with auto and with full training: MovieLens-100k (943 users,
# about 50 of whom come back in a period: exams of 30 users) cut into 9 equal periods and, as a
# platform in its steady state, its last 96 days as 8 nights of 12 days each; a generated platform
# cut into 9 equal periods, and its last 8 days as 8 nights of a day each (~2 h idle in all).
bench-nights: install
	VREC_EVAL_MIN_USERS=30 $(PY) -m jobs.bench.bench_nights --periods 8 --out $(BENCH_DIR)/nights.json
	VREC_EVAL_MIN_USERS=30 $(PY) -m jobs.bench.bench_nights --periods 8 --night-days 12 --out $(BENCH_DIR)/nights_12days.json
	$(PY) -m jobs.bench.bench_nights --dataset load --periods 8 --out $(BENCH_DIR)/nights_load.json
	$(PY) -m jobs.bench.bench_nights --dataset load --periods 8 --night-days 1 --out $(BENCH_DIR)/nights_load_daily.json

# How far apart two full retrains of the same nights are (seeds 7 and 8) on the generated platform:
# the noise of bench-nights' yardstick. Not part of `bench` (about 20 min idle).
bench-seed-noise: install
	$(PY) -m jobs.bench.bench_seed_noise --dataset load --out $(BENCH_DIR)/nights_load_seed_noise.json

# MovieLens-100k nights with the privacy settings off and on, alternately, two rounds (~10 min idle).
bench-privacy: install
	$(PY) -m jobs.bench.bench_privacy --rounds 2 --out $(BENCH_DIR)/privacy.json

# Every nightly stage on a generated landing zone, wall time and peak process-tree memory per stage.
# At the default size (1,000,000 interactions, 200,000 users, 50,000 videos) its two nights (the
# first a full retrain, the next incremental) take about 31 minutes on 2 cores.
# LOAD_ARGS picks a size, e.g.
# LOAD_ARGS="--videos 10000 --users 40000 --interactions 200000 --media 100".
LOAD_WAREHOUSE ?= /tmp/vrec-load
bench-load: install
	rm -rf $(LOAD_WAREHOUSE)
	$(PY) -m jobs.bench.bench_load --warehouse $(LOAD_WAREHOUSE) --second-night $(LOAD_ARGS) --out $(BENCH_DIR)/load.json

# The first night on a sparse, short-video-shaped log: 20,000 videos (300 with a clip, the rest
# text-only), 40,000 users with 3 to 15 interactions each; per-stage time and memory, and held-out
# NDCG@10/HR@10 of the published model against the tuned baselines, and SASRec evaluated after
# the night (it is skipped in a night of this size), timed apart, on two threads: over an hour.
# Then the same on real data: MovieLens-100k cut to each user's newest 3 to 15 ratings (~3 min).
SPARSE_WAREHOUSE ?= /tmp/vrec-sparse-bench
bench-sparse: install
	rm -rf $(SPARSE_WAREHOUSE) $(SPARSE_WAREHOUSE)-movielens
	VREC_SASREC_THREADS=2 $(PY) -m jobs.bench.bench_load --warehouse $(SPARSE_WAREHOUSE) --videos 20000 --users 40000 \
	  --per-user 3 15 --media 300 --sequential-baseline --out $(BENCH_DIR)/sparse.json
	VREC_SASREC_THREADS=2 $(PY) -m jobs.bench.bench_load --warehouse $(SPARSE_WAREHOUSE)-movielens \
	  --movielens $(CURDIR)/../shared/data/movielens-100k --per-user 3 15 --sequential-baseline \
	  --out $(BENCH_DIR)/sparse_movielens.json

clean:
	rm -rf warehouse .airflow .pytest_cache
