"""Training the two-tower model with sampled softmax over in-batch negatives.

Each interaction is one example: the user's earlier videos (up to `history_len`) predict the video
watched next. The other targets of the batch are the negatives; since popular videos turn up as
negatives more often, their logits get log(popularity) subtracted (logQ correction). Seeded and
deterministic on CPU; the same code runs on `cuda`, with mixed precision, when a GPU is present.

Weight averaging: a training with early stopping can return a greedy "soup" of its best epochs
(Wortsman et al., "Model soups", ICML 2022: the best epoch's weights, then each next-best epoch's
added to the average if the validation score does not drop), and a fine-tuning can return the
average of its starting weights and each epoch's (as stochastic weight averaging does). Epochs of
one run near its best lie in one basin, so their average is a model of its own, flatter than any of
them. Not every epoch of a run does: on a small log the training loss can fall steeply after the
best epoch while the validation score does not follow, and a soup across that fall mixes two
regimes. So only epochs whose training loss is within SOUP_LOSS_TOLERANCE of the best epoch's go
into the soup. On the generated platform's first simulated night (5,828 interactions) the best
epoch (4, loss 6.48) and epoch 9 (loss 3.83) made a soup with a higher validation score (0.0702
against 0.0656) whose published model scored 0.098 on the next period, against 0.145 for the best
epoch alone; on MovieLens-100k the four best epochs' losses lie within 2.2% of each other, and
their soup is kept.
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.nn import functional as F

from models.two_tower import TowerConfig, TwoTower

# How far (relative) an epoch's training loss may be from the best epoch's to join its soup.
SOUP_LOSS_TOLERANCE = 0.05


@dataclass
class IndexedInteractions:
    """Interactions as index arrays, sorted by (user, ts): the shape training and scoring share."""

    user: np.ndarray    # int64 user index
    item: np.ndarray    # int64 item index
    weight: np.ndarray  # float32 event weight
    ts: np.ndarray      # float64 Unix seconds

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> "IndexedInteractions":
        return IndexedInteractions(self.user[mask], self.item[mask], self.weight[mask], self.ts[mask])


def histories(data: IndexedInteractions, length: int) -> tuple[np.ndarray, np.ndarray]:
    """For each interaction, the user's previous `length` items (newest first) and their weights.

    Padding has item 0 and weight 0. Built with `length` vectorised shifts, not a loop over users.
    """
    n = len(data)
    first = np.ones(n, bool)
    first[1:] = data.user[1:] != data.user[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
    position = np.arange(n) - start
    items = np.zeros((n, length), np.int64)
    weights = np.zeros((n, length), np.float32)
    for lag in range(1, length + 1):
        valid = position >= lag
        source = np.arange(n)[valid] - lag
        items[valid, lag - 1] = data.item[source]
        weights[valid, lag - 1] = data.weight[source]
    return items, weights


def last_histories(data: IndexedInteractions, n_users: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Each user's most recent `length` items (newest first), as the history for the next video."""
    items = np.zeros((n_users, length), np.int64)
    weights = np.zeros((n_users, length), np.float32)
    ends = np.flatnonzero(np.r_[data.user[1:] != data.user[:-1], True])
    starts = np.r_[0, ends[:-1] + 1]
    for start, end in zip(starts, ends):
        take = slice(max(start, end + 1 - length), end + 1)
        user = data.user[start]
        recent_items, recent_weights = data.item[take][::-1], data.weight[take][::-1]
        items[user, : len(recent_items)] = recent_items
        weights[user, : len(recent_weights)] = recent_weights
    return items, weights


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextmanager
def deterministic_kernels(device: torch.device):
    """Deterministic kernels inside: always on CPU, where embedding and gather backward passes add
    gradients in thread order otherwise, so the same data and seed give bit-identical weights (and
    version); on a GPU as the caller set them. The caller's setting is back afterwards."""
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    _set_deterministic(device.type == "cpu" or was_deterministic)
    try:
        yield
    finally:
        _set_deterministic(was_deterministic)


def _set_deterministic(mode: bool) -> None:
    """`torch.use_deterministic_algorithms` without its import of the compiler (torch._inductor,
    whose flag it also sets; nothing here is compiled): its first call took 1.6-2.3 s a process on
    2 cores, a fifth of a small incremental night's fit."""
    setter = getattr(torch._C, "_set_deterministic_algorithms", None)
    (setter or torch.use_deterministic_algorithms)(mode)


def train_two_tower(content: np.ndarray, data: IndexedInteractions, n_users: int, *, epochs: int = 8,
                    batch_size: int = 512, lr: float = 2e-3, weight_decay: float = 1e-5, seed: int = 7,
                    cfg_overrides: dict | None = None, device: torch.device | None = None,
                    init: TwoTower | None = None, validate: Callable[[TwoTower], float] | None = None,
                    patience: int = 2, history_refresh_steps: int = 0, examples: np.ndarray | None = None,
                    soup: int = 0, average_with_init: bool = False, log=print) -> tuple[TwoTower, dict]:
    """Fit the model on all of `data`; returns the model (on CPU, eval mode) and training metrics.

    With `examples` (indices into `data`), only those interactions are training examples; the
    histories they are predicted from still come from all of `data` (incremental training learns
    the new interactions and a replay sample, each from the user's full history).

    With `history_refresh_steps` > 0, the history side of each batch reads item vectors from a
    table of every item's vector, recomputed without gradients every that many steps, and only the
    batch's targets go through the item tower with gradients. A batch then costs the same at 50,000
    videos as at 1,000, where otherwise every distinct history video (up to batch x history) would
    be encoded, CNN branches included. 0 (the default): exact gradients through the histories.

    With `init`, training continues from a copy of that model (fine-tuning on newer data). With
    `validate` (model -> score, higher is better), training stops once `patience` epochs in a row
    have not improved the score, and the best epoch's weights are kept; with `soup` > 1 as well,
    the greedy soup of the `soup` best epochs' weights (`greedy_soup`). With `init` and
    `average_with_init`, the average of the starting weights and each epoch's weights.
    """
    device = device or pick_device()
    torch.manual_seed(seed)
    generator = np.random.default_rng(seed)
    if init is None:
        cfg = TowerConfig(n_items=content.shape[0], n_users=n_users, content_dim=content.shape[1],
                          **(cfg_overrides or {}))
        model = TwoTower(cfg, torch.from_numpy(content))
    else:
        cfg = init.cfg
        model = copy.deepcopy(init)
    model = model.to(device)
    tensors, warm, log_q = _example_tensors(data, cfg, examples, device)
    n_examples = len(tensors["item"])
    passes = _Passes(model, _optimizers(model, lr, weight_decay), tensors, warm, log_q, batch_size,
                     history_refresh_steps)

    started = time.perf_counter()
    epoch_losses, scores, best_state = [], [], None
    averaged = [_weights(model)] if average_with_init and init is not None else []
    kept_epochs: list[tuple[float, dict, float]] = []   # (score, weights, loss) of the best `soup` epochs
    with deterministic_kernels(device):
        for epoch in range(epochs):
            epoch_losses.append(passes.run(torch.from_numpy(generator.permutation(n_examples)).to(device)))
            line = f"epoch {epoch + 1}/{epochs}: loss {epoch_losses[-1]:.4f}"
            if validate is not None:
                model.eval()
                scores.append(validate(model))
                line += f", validation {scores[-1]:.4f}"
                if scores[-1] >= max(scores):
                    best_state = _weights(model)
                if soup > 1:
                    kept_epochs = sorted([*kept_epochs, (scores[-1], _weights(model), epoch_losses[-1])],
                                         key=lambda kept: -kept[0])[:soup]
            if averaged:
                averaged.append(_weights(model))
            log(line)
            if scores and len(scores) - 1 - int(np.argmax(scores)) >= patience:
                break
    averaging = {}
    if best_state is not None:
        model.load_state_dict(best_state)
        ingredients = soup_ingredients(kept_epochs)
        if len(ingredients) > 1:
            averaging = greedy_soup(model, ingredients, validate, log)
    elif len(averaged) > 1:
        model.load_state_dict(_mean(averaged))
        averaging = {"averaged_weights": len(averaged)}
    seconds = time.perf_counter() - started
    model.eval()
    ran = len(epoch_losses)
    metrics = {"epochs": ran, "train_examples": n_examples, "train_seconds": round(seconds, 3),
               "examples_per_second": round(n_examples * ran / max(seconds, 1e-9), 1),
               "epoch_losses": [round(x, 5) for x in epoch_losses], "device": device.type}
    if scores:
        metrics.update(best_epoch=int(np.argmax(scores)) + 1, validation=[round(x, 5) for x in scores])
    return model.cpu(), {**metrics, **averaging}


def _example_tensors(data: IndexedInteractions, cfg: TowerConfig, examples: np.ndarray | None,
                     device: torch.device) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
    """The training examples' columns (all of `data`, or the rows `examples`, each with its history
    from all of `data`) on `device`; which items `data` holds (warm: their ID rows are used); and
    the logQ correction of the examples' targets."""
    hist_items, hist_weights = histories(data, cfg.history_len)
    warm = torch.from_numpy(np.bincount(data.item, minlength=cfg.n_items) > 0).to(device)
    columns = {"user": data.user, "item": data.item, "weight": data.weight, "hist_items": hist_items,
               "hist_weights": hist_weights}
    if examples is not None:   # a subset: copy only then (a full log's histories are hundreds of MiB)
        columns = {name: np.ascontiguousarray(array[examples]) for name, array in columns.items()}
    # The negatives are the batch's other targets: their popularity is the examples' popularity.
    counts = np.bincount(columns["item"], minlength=cfg.n_items).astype(np.float64)
    log_q = torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + cfg.n_items))).float().to(device)
    return {name: torch.from_numpy(array).to(device) for name, array in columns.items()}, warm, log_q


class _Passes:
    """Passes over the training examples, a batch a step: loss, backward and every optimizer's
    step. The step count and the history table (`history_refresh_steps`) carry over from one pass
    to the next."""

    def __init__(self, model: TwoTower, optimizers: list[torch.optim.Optimizer], tensors: dict[str, torch.Tensor],
                 warm: torch.Tensor, log_q: torch.Tensor, batch_size: int, history_refresh_steps: int):
        self.model, self.optimizers, self.tensors = model, optimizers, tensors
        self.warm, self.log_q = warm, log_q
        self.batch_size, self.history_refresh_steps = batch_size, history_refresh_steps
        # bfloat16 autocast on GPUs: same exponent range as float32, so no loss scaling is needed.
        self.use_amp = warm.device.type == "cuda"
        self.step, self.history_table = 0, None

    def run(self, order: torch.Tensor) -> float:
        """One pass over the examples in `order`; returns its mean loss."""
        model, device_type = self.model, self.warm.device.type
        model.train()
        total, seen = 0.0, 0
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin: begin + self.batch_size]
            if len(batch) < 2:
                continue
            if self.history_refresh_steps and self.step % self.history_refresh_steps == 0:
                self.history_table = _item_table(model, self.warm)
            self.step += 1
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.use_amp):
                loss = _batch_loss(model, {k: v[batch] for k, v in self.tensors.items()}, self.warm, self.log_q,
                                   model.cfg, self.history_table)
            for optimizer in self.optimizers:
                optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for optimizer in self.optimizers:
                optimizer.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        return total / max(seen, 1)


def _weights(model: TwoTower) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}


def _mean(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {name: torch.stack([state[name] for state in states]).mean(dim=0) for name in states[0]}


def soup_ingredients(epochs: list[tuple[float, dict, float]],
                     tolerance: float = SOUP_LOSS_TOLERANCE) -> list[tuple[float, dict]]:
    """The (validation score, weights) of `epochs` ((score, weights, training loss), best first)
    whose training loss is within `tolerance` (relative) of the best epoch's."""
    if not epochs:
        return []
    best_loss = epochs[0][2]
    return [(score, weights) for score, weights, loss in epochs
            if abs(loss - best_loss) <= tolerance * abs(best_loss)]


def greedy_soup(model: TwoTower, epochs: list[tuple[float, dict]], validate: Callable[[TwoTower], float],
                log=print) -> dict:
    """Load into `model` the greedy soup of `epochs` ((validation score, weights), best first): the
    best epoch's weights, then each next one's joined to the average when the average's validation
    score stays at least the best so far. Returns the soup's size and validation score."""
    soup, best = [epochs[0][1]], epochs[0][0]
    for _, weights in epochs[1:]:
        model.load_state_dict(_mean([*soup, weights]))
        model.eval()
        score = validate(model)
        log(f"soup of {len(soup) + 1} epochs: validation {score:.4f} (best so far {best:.4f})")
        if score >= best:
            soup, best = [*soup, weights], score
    model.load_state_dict(_mean(soup))
    return {"soup_epochs": len(soup), "soup_validation": round(best, 5)}


def _optimizers(model: TwoTower, lr: float, weight_decay: float) -> list[torch.optim.Optimizer]:
    """AdamW for the layers; lazy Adam (SparseAdam) for the sparse ID tables, so a step updates only the
    rows its batch used and costs the same at 200,000 users as at 1,000. The tables get no weight
    decay: decaying every row each step is the dense update this avoids."""
    tables = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding) and m.sparse]
    layers = [p for p in model.parameters() if all(p is not t for t in tables)]
    return [torch.optim.AdamW(layers, lr=lr, weight_decay=weight_decay),
            torch.optim.SparseAdam(tables, lr=lr)]


def _item_table(model: TwoTower, warm: torch.Tensor, block_size: int = 8192) -> torch.Tensor:
    """Every item's vector as the model stands now, without gradients (dropout off)."""
    model.eval()
    with torch.no_grad():
        items = torch.arange(model.cfg.n_items, device=warm.device)
        table = torch.cat([model.item_vectors(items[b:b + block_size], warm[b:b + block_size])
                           for b in range(0, len(items), block_size)])
    model.train()
    return table


def _batch_loss(model: TwoTower, batch: dict, warm: torch.Tensor, log_q: torch.Tensor,
                cfg: TowerConfig, history_table: torch.Tensor | None = None) -> torch.Tensor:
    targets = batch["item"]
    # Encode each distinct item of the batch once, then gather for histories and targets.
    encoded = targets if history_table is not None else torch.cat([batch["hist_items"].flatten(), targets])
    unique, inverse = torch.unique(encoded, return_inverse=True)
    keep_id = torch.rand(unique.shape, device=unique.device) >= cfg.id_dropout
    vectors = model.item_vectors(unique, warm[unique] & keep_id)
    target_vectors = vectors[inverse[-len(targets):]]
    if history_table is not None:
        history_vectors = history_table[batch["hist_items"]]
    else:
        history_vectors = vectors[inverse[:-len(targets)]].view(*batch["hist_items"].shape, -1)
    users = model.user_vectors(batch["user"], history_vectors, batch["hist_weights"])
    logits = users @ target_vectors.T / cfg.temperature - log_q[targets].unsqueeze(0)
    # Another row with the same target video is not a negative for this row.
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    same.fill_diagonal_(False)
    logits = logits.float().masked_fill(same, -math.inf)
    labels = torch.arange(len(targets), device=targets.device)
    per_example = F.cross_entropy(logits, labels, reduction="none")
    return (per_example * batch["weight"]).sum() / batch["weight"].sum()
