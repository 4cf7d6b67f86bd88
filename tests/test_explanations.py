"""Explanations of every published recommendation: the rule of the modality shares on exact small
cases, the side table's place beside the serving table, and a night on the demo generator's
catalog (text only): one explanation per published row with the lists' run date and model,
`because` videos of the recommended video's genre from the user's own history, text-only shares,
the consumer view's join, and rollback moving both tables together."""

from __future__ import annotations

import numpy as np
import pytest
from deltalake import DeltaTable

from jobs.plumbing import config
from jobs.plumbing.table_location import TableLocation
from jobs.plumbing.tables import read_table
from models.explanations import MODALITIES, AblatedItems, Explainer, modality_shares
from tests.landing import publish_first_night, text_only_catalog, write_landing
from tests.serving_contract import check_explanations, check_serving_table, same_genre_share

FIRST_NIGHT = "2026-11-20"


def _explainer(items: np.ndarray, ablated: dict[str, dict[int, list[float]]]) -> Explainer:
    """Unit item vectors and, per modality, the vectors of the items that have it without it."""
    by_modality = {}
    for modality in MODALITIES:
        rows = ablated.get(modality, {})
        position = np.full(len(items), -1, np.int64)
        position[list(rows)] = np.arange(len(rows))
        vectors = np.array([rows[r] for r in rows], np.float32).reshape(len(rows), items.shape[1])
        by_modality[modality] = AblatedItems(position, vectors)
    return Explainer(items.astype(np.float32), by_modality, np.ones(len(items), bool), np.zeros(len(items), bool))


def test_shares_are_the_clipped_drops_normalised_and_zero_for_absent_modalities():
    items = np.array([[1.0, 0.0], [0.6, 0.8]])
    # Video 0 has text and an ID: without text the score 1.0 falls to 0.6, without the ID to 0.8.
    # Video 1 has text, audio and an ID: removing audio raises its score (a negative drop, clipped).
    explainer = _explainer(items, {"text": {0: [0.6, 0.8], 1: [1.0, 0.0]},
                                   "audio": {1: [0.0, 1.0]},
                                   "collaborative": {0: [0.8, 0.6], 1: [0.8, 0.6]}})
    user = np.array([[1.0, 0.0], [1.0, 0.0]])
    shares = modality_shares(explainer, user, np.array([0, 1]))
    # Video 0: drops text 0.4, collaborative 0.2.
    assert np.allclose(shares[0], [2 / 3, 0.0, 0.0, 1 / 3])
    # Video 1 (score 0.6): text -0.4, audio +0.6 -> clipped at 0; collaborative -0.2 -> 0:
    # no removal lowers the score, so the whole share goes to the least negative change: audio.
    assert np.allclose(shares[1], [0.0, 0.0, 1.0, 0.0])
    assert np.allclose(shares.sum(axis=1), 1.0, atol=1e-12)


def test_a_video_with_nothing_to_remove_is_carried_by_collaborative():
    explainer = _explainer(np.array([[1.0, 0.0]]), {})
    assert modality_shares(explainer, np.array([[1.0, 0.0]]), np.array([0])).tolist() == [[0.0, 0.0, 0.0, 1.0]]


def test_the_explanations_table_sits_beside_the_serving_table():
    wh = config.Warehouse.at("/w")
    assert wh.explanations.uri == "/w/tables/recommendation_explanations"
    on_s3 = TableLocation.parse("s3://bucket/serving/recommendations", connection_id="aws_serving")
    assert on_s3.sibling("recommendation_explanations") == TableLocation(
        "s3://bucket/serving/recommendation_explanations", "aws_serving")
    assert TableLocation.parse("s3://bucket/recommendations").sibling("x").uri == "s3://bucket/x"
    with pytest.raises(ValueError, match="bucket's root"):
        TableLocation.parse("s3://bucket").sibling("recommendation_explanations")
    assert list(wh.published_tables()) == ["explanations", "recommendations"]


@pytest.fixture(scope="module")
def explained(spark, tmp_path_factory):
    """A first night (top 5) on the demo's catalog and users (`make demo`'s sizes) without clips:
    (warehouse, genre of each video, model version). On a much smaller catalog users have watched
    most of their genres' videos, lists must reach into other genres, and no watched video of the
    same genre can explain those."""
    wh = config.Warehouse.at(tmp_path_factory.mktemp("explained") / "warehouse")
    videos, _, rows = text_only_catalog(seed=5, n_videos=240, n_users=150)
    write_landing(wh, videos, rows)
    version = publish_first_night(spark, wh, FIRST_NIGHT, top_n=5, epochs=6)
    return wh, {v.video_id: v.genre for v in videos}, version


@pytest.mark.spark
def test_every_published_row_has_its_explanation_from_the_users_history(explained):
    wh, genre, version = explained
    lists = check_serving_table(wh, FIRST_NIGHT, 5)
    joined = check_explanations(wh, FIRST_NIGHT)
    assert len(joined) == len(lists) and set(joined["model_version"]) == {version}
    # Text only: no visual or audio share anywhere.
    assert (joined["share_visual"] == 0).all() and (joined["share_audio"] == 0).all()
    assert (joined["share_text"] > 0).any()
    warm = set(read_table(wh.interactions, ["video_id"]).to_pandas()["video_id"])
    share = same_genre_share(joined, genre, warm)
    assert share >= 0.8, share


@pytest.mark.spark
def test_consumer_view_joins_lists_and_reasons_on_the_night(spark, explained):
    from jobs.consumer_views import register_views

    wh, _, _ = explained
    register_views(spark, wh)
    view = spark.table("recommendations_with_explanations").toPandas()
    lists = DeltaTable(str(wh.recommendations)).to_pandas()
    assert len(view) == len(lists) and view["reason"].notna().all()


@pytest.mark.spark
def test_show_recommendations_prints_the_reason_beside_each_video(explained, capsys):
    from jobs.show_recommendations import main

    wh, _, _ = explained
    titles = set(read_table(wh.catalog, ["title"]).to_pandas()["title"])
    assert main(["--warehouse", str(wh.root), "--users", "3"]) == 0
    video_lines = [line for line in capsys.readouterr().out.splitlines() if line[:5].strip().rstrip(".").isdigit()]
    assert len(video_lines) == 3 * 5
    reasons = [line.split("  -- ", 1)[1] for line in video_lines]
    because = [r.split("because you watched ", 1)[1] for r in reasons if "because you watched " in r]
    assert because and set(because) <= titles


@pytest.mark.spark
def test_rollback_moves_both_tables_to_the_same_night(explained):
    from jobs.publish import publish
    from jobs.rollback import rollback
    from jobs.score import score

    wh, _, version = explained
    score(wh, "2026-11-21", top_n=3, model_version=version)
    publish(wh, "2026-11-21", top_n=3)
    check_explanations(wh, "2026-11-21")
    counters = rollback(wh, to_date=FIRST_NIGHT)
    assert counters["explanations_restored_version"] == 0
    joined = check_explanations(wh, FIRST_NIGHT)
    assert joined.groupby("user_id").size().eq(5).all()


def test_ranker_contributions_sum_to_the_scores_the_lists_were_ranked_by():
    """The SHAP values are taken on the features the ranker ranked each listed video with (its
    tower score and its rank among the tower's candidates included): with the expected value they
    add up to the published score."""
    import lightgbm as lgb

    from models.candidate_lists import ScoringModel, Users, candidate_lists
    from models.evaluation import seen_csr
    from models.explanations import MODALITIES, AblatedItems, Explainer, explain_lists, ranker_contributions
    from models.fit import catalog_features
    from models.ranker import FEATURES
    from models.scoring import ItemVectors
    from models.training import IndexedInteractions

    rng = np.random.default_rng(11)
    n_users, n_items = 40, 90
    unit = lambda a: (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
    users, items = unit(rng.normal(size=(n_users, 8))), unit(rng.normal(size=(n_items, 8)))
    seen = [rng.choice(n_items, 6, replace=False) for _ in range(n_users)]
    data = IndexedInteractions(np.repeat(np.arange(n_users), 6), np.concatenate(seen).astype(np.int64),
                               np.ones(6 * n_users, np.float32), np.arange(6 * n_users, dtype=np.float64))
    features = rng.normal(size=(3000, len(FEATURES)))
    features[:, FEATURES.index("tower_rank")] = rng.integers(0, 30, 3000)
    relevance = features[:, 0] - 0.1 * features[:, FEATURES.index("tower_rank")] + features[:, 7]
    labels = np.digitize(relevance, np.quantile(relevance, [0.5, 0.8, 0.95]))
    ranker = lgb.LGBMRanker(n_estimators=30, num_leaves=7, min_child_samples=5, verbose=-1)
    ranker.fit(features, labels, group=[30] * 100, feature_name=list(FEATURES))
    model = ScoringModel(ItemVectors(items), ranker.booster_,
                         catalog_features(data, rng.normal(size=(n_items, 4)).astype(np.float32), n_users),
                         candidates=30)
    block = Users(users, *seen_csr(data, n_users))
    lists = candidate_lists(model, block, 5, keep_features=True)
    contributions = ranker_contributions(model, block, lists.videos)
    assert (np.abs(contributions[:, FEATURES.index("tower_rank")]) > 0).any()
    np.testing.assert_allclose(contributions.sum(axis=1).reshape(lists.videos.shape), lists.scores,
                               rtol=1e-9, atol=1e-9)
    # Explained from the features the lists kept (the local engine) or from features computed
    # again from the tower (lists written by Spark's executors): the same explanations.
    no_modality = AblatedItems(np.full(n_items, -1), np.zeros((0, 8), np.float32))
    explainer = Explainer(items, dict.fromkeys(MODALITIES, no_modality), np.ones(n_items, bool),
                          np.zeros(n_items, bool), model)
    supports = seen_csr(data, n_users)
    kept = explain_lists(explainer, block, supports, lists.videos, features=lists.features, block_size=16)
    again = explain_lists(explainer, block, supports, lists.videos, block_size=16)
    np.testing.assert_array_equal(kept.top_features, again.top_features)
    np.testing.assert_allclose(kept.top_contributions, again.top_contributions, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("zero_as_missing", [False, True])
def test_contributions_shared_by_rows_that_pass_each_tree_alike_equal_lightgbms_own(zero_as_missing):
    """`TreeContributions` (each tree's SHAP values computed once per way a row passes it) gives
    LightGBM's `pred_contrib` on every row, missing values and zeros included."""
    import lightgbm as lgb

    from models.tree_contributions import TreeContributions

    rng = np.random.default_rng(5)
    features = rng.normal(size=(4000, 6))
    features[rng.random(4000) < 0.1, 1] = np.nan
    features[rng.random(4000) < 0.2, 2] = 0.0
    features[:, 3] = rng.integers(0, 50, 4000)
    relevance = features[:, 0] + np.nan_to_num(features[:, 1]) - 0.05 * features[:, 3] + (features[:, 2] == 0)
    labels = np.digitize(relevance, np.quantile(relevance, [0.5, 0.8, 0.95]))
    ranker = lgb.LGBMRanker(n_estimators=40, num_leaves=15, min_child_samples=5, zero_as_missing=zero_as_missing,
                            verbose=-1).fit(features, labels, group=[40] * 100)
    shap = TreeContributions(ranker)
    assert shap.shared
    rows = np.r_[features, rng.normal(size=(500, 6))]   # rows it was not fit on, too
    np.testing.assert_allclose(shap(rows), ranker.booster_.predict(rows, pred_contrib=True), rtol=1e-9, atol=1e-9)
