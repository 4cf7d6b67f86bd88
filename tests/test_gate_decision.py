"""The gate's decision on a small exam: an incremental model is stopped only when the exam is sure
it is below the floor; a full night's model, compared on leave-last-out, on its score alone."""

import pytest

import jobs.evaluate
from jobs.plumbing import config

PRODUCTION = "two-tower-2026-11-20-aaaaaaaaaa"


def _incremental(score: float, production: float, interval: tuple[float, float]) -> dict:
    low, high = interval
    return {"evaluation_protocol": "after_cutoff", "parent_version": PRODUCTION, "published_method": "two_tower",
            "training": {"exam_users": 30},
            "evaluation": {"two_tower": {"ndcg@10": score, "ndcg@10_to_production_low": low,
                                         "ndcg@10_to_production_high": high},
                           "production": {"ndcg@10": production}}}


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs.evaluate, "production_model", lambda wh: PRODUCTION)
    return config.Warehouse.at(tmp_path)


@pytest.mark.parametrize(("interval", "passed"), [((0.41, 0.90), True), ((0.20, 0.74), False)],
                         ids=["interval-reaches-above-the-floor", "interval-wholly-below"])
def test_an_incremental_model_below_the_floor_is_stopped_only_when_the_exam_is_sure(warehouse, interval, passed):
    meta = _incremental(0.0141, 0.0220, interval)   # 0.64 of production, under the 0.75 floor
    ok, verdict = jobs.evaluate.gate(warehouse, "two-tower-2026-11-21-bbbbbbbbbb", meta, tolerance=0.25)
    assert ok is passed
    assert f"between {interval[0]:.2f} and {interval[1]:.2f}" in verdict
    assert ("not surely" in verdict) is passed


def test_an_incremental_model_above_the_floor_passes_whatever_its_interval(warehouse):
    meta = _incremental(0.0200, 0.0220, (0.30, 0.70))
    ok, verdict = jobs.evaluate.gate(warehouse, "two-tower-2026-11-21-bbbbbbbbbb", meta, tolerance=0.25)
    assert ok and "not surely" not in verdict


def test_a_full_model_is_judged_on_its_leave_last_out_score(warehouse):
    production = warehouse.models / PRODUCTION / "model.json"
    production.parent.mkdir(parents=True)
    production.write_text('{"model_version": "%s", "evaluation": {"two_tower": {"ndcg@10": 0.10}}}' % PRODUCTION)
    full = {"evaluation_protocol": "leave_last_out", "evaluation": {"two_tower": {"ndcg@10": 0.07}}}
    ok, verdict = jobs.evaluate.gate(warehouse, "two-tower-2026-11-21-cccccccccc", full, tolerance=0.25)
    assert not ok and "leave-last-out" in verdict
    assert jobs.evaluate.gate(warehouse, "two-tower-2026-11-21-cccccccccc",
                              {**full, "evaluation": {"two_tower": {"ndcg@10": 0.08}}}, tolerance=0.25)[0]
