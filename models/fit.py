"""The nightly fit: the two-tower model, the LightGBM re-ranker, and an honest measure of both.

Three nested slices of the interaction log, each user's most recent interaction held out at each
level, so nothing is scored on what it was trained on:

1. the tower is trained on everything but each user's last two interactions; the re-ranker learns
   to pick the second-to-last video out of that tower's candidates;
2. the tower is fine-tuned on everything but the last interaction, and the tower alone and the tower
   with the re-ranker are evaluated on the last one (the baselines are evaluated on the same slice);
3. the tower is fine-tuned on everything: the model the published lists come from.

The re-ranker is kept only when it improves NDCG@10 over the tower alone on slice 2. On the same
slice the published scorer is measured again with each modality removed at scoring time
(`ablate_modalities`: text, visual, audio, or the items' ID embeddings), which says what each
input earns; the fitted re-ranker's global feature importance (gain) is kept with it.

The three trainings share their work: each fine-tuning starts from the previous weights (two
epochs; with one, MovieLens-100k's tower lost 10% of its NDCG@10). The first training's budget
follows the data (`plan_fit`): its most epochs shrink as the log grows (a large log reaches its
best validation score in a few epochs, and every further epoch costs minutes), batches grow with
it, and early stopping measures a sample of users rather than all of them.

Each training ends on averaged weights (`models.training`): the first on the greedy soup of its
`soup` best epochs, chosen on the same validation slice as its early stopping, and each fine-tuning
on the mean of its starting weights and its epochs' (when early stopping ended the first training;
one that ran out of epochs was still improving, and its fine-tunings keep their last weights). On
MovieLens-100k this raised the published tower's held-out NDCG@10 from 0.1310 / 0.1297 (seeds 7 /
8) to 0.1403 / 0.1366. The soup alone, fine-tuned as before, kept none of its gain (0.1303 /
0.1275): two epochs of fresh Adam steps leave the averaged point.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np

from models.baselines import ItemKNN, user_item_matrix
from models.evaluation import evaluate, leave_last_out, sample_users
from models.ranker import CatalogFeatures, Reranked, RankerContext, feature_gain, fit_ranker
from models.scoring import encode
from models.training import IndexedInteractions, train_two_tower
from models.two_tower import TwoTower


@dataclass
class FitSettings:
    epochs: int = 24            # at most: early stopping and the data's budget (plan_fit) end sooner
    patience: int = 5           # at most: plan_fit waits less on larger logs
    fine_tune_epochs: int = 2
    soup: int = 4                   # the first training's best epochs tried in its weight soup (1: the best alone)
    average_fine_tunes: bool = True  # each fine-tuning returns the mean of its start and its epochs
    batch_size: int | None = None   # None: grows with the data (plan_fit)
    candidates: int = 200
    max_eval_users: int | None = None   # None: every user
    # Steps between refreshes of the item table the histories read (see train_two_tower); None:
    # exact gradients through histories up to EXACT_HISTORY_MAX_ITEMS videos, a refresh every 100
    # steps above (a batch would otherwise encode up to batch x history distinct videos).
    history_refresh_steps: int | None = None
    seed: int = 7
    cfg_overrides: dict = field(default_factory=dict)


EXACT_HISTORY_MAX_ITEMS = 5_000
# The first training sees at most about this many examples (epochs x interactions): all 24 epochs
# at MovieLens-100k's size, 8 at 300,000 interactions, 3 from 800,000 on.
EXAMPLE_BUDGET = 2_400_000
MIN_EPOCHS = 3
# Early stopping waits for a new best validation score about this many examples, but at least 2
# epochs and at most a third of the epochs: 5 epochs at MovieLens-100k's size, 2 from 167,000
# interactions (as before), 1 once the budget allows only 3 epochs. A small log's validation slice
# is noisy and its epochs are cheap: MovieLens-100k's climbed again after two epochs without a new
# best (patience 2 stopped seed 8 at epoch 7, held-out NDCG@10 0.1203; patience 5 ran to epoch 14,
# 0.1297).
PATIENCE_BUDGET = 500_000
# Early stopping measures at most this many users each epoch (the evaluation uses max_eval_users).
VALIDATION_USERS = 5_000


@dataclass
class FitPlan:
    epochs: int
    patience: int
    batch_size: int
    validation_users: int | None


def plan_fit(settings: FitSettings, n_examples: int) -> FitPlan:
    """The first training's budget for `n_examples` interactions."""
    epochs = min(settings.epochs, max(MIN_EPOCHS, EXAMPLE_BUDGET // max(n_examples, 1)))
    # Larger batches on a larger log: fewer steps per epoch and more in-batch negatives per example.
    batch_size = settings.batch_size or (512 if n_examples <= 250_000 else 1024 if n_examples <= 1_000_000 else 2048)
    validation_users = min(settings.max_eval_users or VALIDATION_USERS, VALIDATION_USERS)
    patience = max(1, min(settings.patience, epochs // 3, max(2, PATIENCE_BUDGET // max(n_examples, 1))))
    return FitPlan(epochs, patience, batch_size, validation_users)


@dataclass
class FitResult:
    model: TwoTower
    ranker: object | None          # a fitted LGBMRanker, or None when it did not help
    evaluation: dict[str, dict]    # method -> metrics on the held-out slice
    training: dict
    ablation: dict[str, dict] = field(default_factory=dict)   # modality -> metrics without it (ablate_modalities)
    ranker_gain: dict[str, float] = field(default_factory=dict)   # feature -> total gain of the fitted ranker


def unit_rows(content: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(content, axis=1, keepdims=True)
    return (content / np.maximum(norms, 1e-9)).astype(np.float32)


def catalog_features(data: IndexedInteractions, content: np.ndarray, n_users: int) -> CatalogFeatures:
    """The re-ranker's per-video features from `data`: what scoring needs besides the users."""
    matrix = user_item_matrix(data, n_users, content.shape[0])
    return CatalogFeatures.from_interactions(data, ItemKNN(matrix).similarity, unit_rows(content))


def ranker_context(data: IndexedInteractions, content: np.ndarray, n_users: int) -> RankerContext:
    return RankerContext(data, catalog_features(data, content, n_users), n_users)


ABLATED_METRICS = ("ndcg@10", "hr@10")


def ablate_modalities(tower: TwoTower, content: np.ndarray, holdout, n_users: int,
                      modalities: dict[str, tuple[np.ndarray, np.ndarray]], *, ranker=None,
                      context: RankerContext | None = None, candidates: int = 200) -> dict[str, dict]:
    """Modality -> held-out NDCG@10 and HR@10 of the scorer with that modality removed at scoring
    time, and how many videos have it (`videos_with_modality`; 0: nothing to remove, no metrics).

    `modalities`: content modality -> (its columns, which videos have it), which are zeroed (blocks
    and presence flags) for every video, users re-encoded from the changed item vectors;
    `collaborative` drops every item's ID embedding. With a `ranker`, the re-ranked scorer over the
    ablated tower, its content-similarity feature computed without the modality as well.
    """
    n_items = content.shape[0]
    result = {}
    warm = np.bincount(holdout.train.item, minlength=n_items) > 0
    for modality in (*modalities, "collaborative"):
        if modality == "collaborative":
            ablated, count = content, int(warm.sum())
            vectors = encode(tower, content, holdout.train, n_users, use_id=np.zeros(n_items, bool))
        else:
            columns, present = modalities[modality]
            count = int(present.sum())
            ablated = content.copy()
            ablated[:, columns] = 0.0
            vectors = encode(tower, ablated, holdout.train, n_users) if count else None
        result[modality] = {"videos_with_modality": float(count)}
        if not count:
            continue
        scorer = vectors
        if ranker is not None and context is not None:
            catalog = dataclasses.replace(context.catalog, content=unit_rows(ablated))
            scorer = Reranked(vectors, ranker, RankerContext(context.data, catalog, n_users), candidates)
        metrics = evaluate(scorer, holdout, n_users, n_items)
        result[modality].update({name: metrics.get(name, 0.0) for name in ABLATED_METRICS})
    return result


def fit_and_evaluate(content: np.ndarray, data: IndexedInteractions, n_users: int,
                     settings: FitSettings = FitSettings(), log=print,
                     modalities: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> FitResult:
    """`modalities`: content modality -> (columns, videos that have it) to measure the published
    scorer without (`ablate_modalities`); None: no ablation."""
    n_items = content.shape[0]
    evaluation_slice = leave_last_out(data, n_items, settings.max_eval_users, settings.seed)
    ranker_slice = leave_last_out(evaluation_slice.train, n_items, settings.max_eval_users, settings.seed)
    plan = plan_fit(settings, len(ranker_slice.train))
    refresh = settings.history_refresh_steps
    if refresh is None:
        refresh = 0 if n_items <= EXACT_HISTORY_MAX_ITEMS else 100
    common = dict(batch_size=plan.batch_size, seed=settings.seed, history_refresh_steps=refresh, log=log)

    log(f"tower on {len(ranker_slice.train)} interactions (all but each user's last two): at most "
        f"{plan.epochs} epochs, patience {plan.patience}, batches of {plan.batch_size}")
    validation_slice = sample_users(ranker_slice, plan.validation_users, settings.seed)

    def validate(model: TwoTower) -> float:
        """Early stopping on the second-to-last interactions, the slice the re-ranker then learns from."""
        return evaluate(encode(model, content, ranker_slice.train, n_users), validation_slice,
                        n_users, n_items).get("ndcg@10", 0.0)

    tower, first = train_two_tower(content, ranker_slice.train, n_users, epochs=plan.epochs,
                                   cfg_overrides=settings.cfg_overrides, validate=validate,
                                   patience=plan.patience, soup=settings.soup, **common)
    # Averaging a fine-tuning with its start assumes the start is near its best: early stopping
    # ended the first training. One cut short by its epoch budget was still improving, and the
    # average would pull each fine-tuning back towards it.
    stopped_early = first["epochs"] < plan.epochs
    fine_tune = dict(epochs=settings.fine_tune_epochs, **common,
                     average_with_init=settings.average_fine_tunes and stopped_early)
    ranker, ranker_stats = fit_ranker(encode(tower, content, ranker_slice.train, n_users),
                                      ranker_context(ranker_slice.train, content, n_users),
                                      ranker_slice.users, ranker_slice.items,
                                      candidates=settings.candidates, seed=settings.seed)

    log(f"fine-tuning on {len(evaluation_slice.train)} interactions, evaluating on {len(evaluation_slice.users)}")
    tower, second = train_two_tower(content, evaluation_slice.train, n_users, init=tower, **fine_tune)
    vectors = encode(tower, content, evaluation_slice.train, n_users)
    evaluation = {"two_tower": evaluate(vectors, evaluation_slice, n_users, n_items)}
    ranker_gain = feature_gain(ranker)
    context = None
    if ranker is not None:
        context = ranker_context(evaluation_slice.train, content, n_users)
        evaluation["two_tower_ranker"] = evaluate(Reranked(vectors, ranker, context, settings.candidates),
                                                  evaluation_slice, n_users, n_items)
        if evaluation["two_tower_ranker"].get("ndcg@10", 0.0) <= evaluation["two_tower"].get("ndcg@10", 0.0):
            log("the re-ranker does not improve NDCG@10 on the held-out slice: published lists use the tower alone")
            ranker = None
    ablation = {}
    if modalities is not None:
        started = time.perf_counter()
        ablation = ablate_modalities(tower, content, evaluation_slice, n_users, modalities, ranker=ranker,
                                     context=context, candidates=settings.candidates)
        log(f"modality ablation in {time.perf_counter() - started:.1f}s: " + ", ".join(
            f"without {m} NDCG@10 {a['ndcg@10']:.4f}" if "ndcg@10" in a else f"no {m}" for m, a in ablation.items()))

    log(f"fine-tuning on all {len(data)} interactions for the published lists")
    tower, third = train_two_tower(content, data, n_users, init=tower, **fine_tune)
    seconds = first["train_seconds"] + second["train_seconds"] + third["train_seconds"]
    examples = (len(ranker_slice.train) * first["epochs"]
                + (len(evaluation_slice.train) + len(data)) * settings.fine_tune_epochs)
    training = {"device": first["device"], "train_seconds": round(seconds, 3),
                "examples_per_second": round(examples / max(seconds, 1e-9), 1),
                "epochs": first["epochs"], "best_epoch": first.get("best_epoch"),
                "validation_ndcg@10": first.get("validation"), "fine_tune_epochs": settings.fine_tune_epochs,
                "soup_epochs": first.get("soup_epochs", 1), "soup_validation_ndcg@10": first.get("soup_validation"),
                "averaged_fine_tunes": fine_tune["average_with_init"],
                "epoch_losses": first["epoch_losses"] + second["epoch_losses"] + third["epoch_losses"],
                "train_examples": len(data), "ranker_used": ranker is not None,
                "max_epochs": plan.epochs, "patience": plan.patience, "batch_size": plan.batch_size,
                "history_refresh_steps": refresh, **ranker_stats}
    return FitResult(tower, ranker, evaluation, training, ablation, ranker_gain)
