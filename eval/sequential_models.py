"""SASRec and GRU4Rec from RecBole, trained on a run's training rows, as baselines.

RecBole (the library LLMRank's baselines come from) gives the models
(`recbole.model.sequential_recommender`); two parts of it cannot run beside the project's
pins and are replaced here, nothing else:
- `recbole.config.Config` aliases removed NumPy names (`np.float_`) when built, and its
  data pipeline (Dataset, Interaction from pandas) uses `np.float`: NumPy 2 has neither.
  A Config subclass skips those aliases and device set-up (which writes
  CUDA_VISIBLE_DEVICES); the batches are made here as tensors, as RecBole's sequential
  data augmentation makes them (every prefix of a user's sequence predicts the next item).
- RecBole's trainer reloads its best checkpoint with `torch.load`, which torch >= 2.6
  refuses for its pickled config; the best epoch's weights are kept in memory instead.

Training: each user's training sequence (oldest first, the protocol's time order), its last
item held out as that user's validation target; Adam, cross-entropy over every item
(RecBole's default loss for both), early stopping on validation NDCG@10 (full ranking over
every item, the user's earlier items excluded). The time and epochs are recorded.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from eval.datasets import Rating

Model = Literal["sasrec", "gru4rec"]
PAD = 0
"""RecBole's padding id: item ids start at 1."""


@dataclass(frozen=True)
class TrainingLog:
    """How a model was trained: shown in the report beside its row."""

    model: str
    sequences: int
    """Training examples (prefix -> next item) per epoch."""
    validation_users: int
    epochs: int
    """Epochs run (early stopping included)."""
    best_epoch: int
    best_validation_ndcg10: float
    seconds: float


@dataclass(frozen=True)
class SequentialSettings:
    """Hyper-parameters: RecBole's defaults, but for the epoch budget (CPU)."""

    max_epochs: int = 30
    patience: int = 3
    """Stop after this many epochs without a better validation NDCG@10."""
    batch_size: int = 256
    learning_rate: float = 0.001
    max_length: int = 50
    seed: int = 0


def _recbole_config(model: Model, settings: SequentialSettings) -> Any:
    from recbole.config import Config

    class _Config(Config):  # type: ignore[misc]
        def compatibility_settings(self) -> None:
            """NumPy 2 has no np.float_ to alias; the batches here never need the aliases."""

        def _load_cmd_line(self) -> dict[str, Any]:
            """Never the process's command line (it belongs to recagent's CLI)."""
            return {}

        def _init_device(self) -> None:
            import torch

            self.final_config_dict.update(device=torch.device("cpu"), single_spec=True,
                                          local_rank=0, gpu_id="")

    return _Config(model={"sasrec": "SASRec", "gru4rec": "GRU4Rec"}[model], dataset="run",
                   config_dict={"use_gpu": False, "MAX_ITEM_LIST_LENGTH": settings.max_length,
                                "train_neg_sample_args": None, "loss_type": "CE",
                                "seed": settings.seed, "show_progress": False})


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Torch's intra-op threads set to `n` for the block: on a shared 2-core machine one
    thread ran a SASRec batch 3x faster than two (measured); the caller's setting returns."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _network(model: Model) -> Any:
    """RecBole's model class, able to give its output at every position (training)
    instead of the last one only: both models end their forward in `gather_indexes`."""
    from recbole.model.sequential_recommender import GRU4Rec, SASRec

    base = SASRec if model == "sasrec" else GRU4Rec

    class _EveryPosition(base):  # type: ignore[misc,valid-type]
        all_positions = False

        def gather_indexes(self, output: Any, gather_index: Any) -> Any:
            if self.all_positions:
                return output
            return super().gather_indexes(output, gather_index)

    return _EveryPosition


class _Items:
    """What a RecBole model asks of its data set: the number of item ids (padding included)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def num(self, field: str) -> int:
        return self.n


def sequences_of(train: Sequence[Rating]) -> dict[str, list[str]]:
    """Each user's items in the order given (the protocol's time order), a re-rated item
    at its latest place."""
    out: dict[str, list[str]] = {}
    for r in train:
        seq = out.setdefault(r.user, [])
        if r.item in seq:
            seq.remove(r.item)
        seq.append(r.item)
    return out


class SequentialModel:
    """A RecBole sequential model trained on the given rows; `scores(history)` gives every
    known item's score for a history (oldest first)."""

    def __init__(self, model: Model, train: Sequence[Rating],
                 settings: SequentialSettings | None = None,
                 progress: Callable[[str], object] = lambda _: None) -> None:
        import torch

        self.progress = progress
        self.settings = settings or SequentialSettings()
        seqs = sequences_of(train)
        self.ids = sorted({i for s in seqs.values() for i in s})
        self.index = {item: n + 1 for n, item in enumerate(self.ids)}
        self.name = model
        start = time.perf_counter()
        with torch.random.fork_rng(), _threads(1):  # seeded apart from the caller's generator
            torch.manual_seed(self.settings.seed)
            self.config = _recbole_config(model, self.settings)
            self.model = _network(model)(self.config, _Items(len(self.ids) + 1))
            self.log = self._train(seqs, start)

    # ---- data -----------------------------------------------------------------------

    def _encode(self, items: Sequence[str]) -> list[int]:
        known = [self.index[i] for i in items if i in self.index]
        return known[-self.settings.max_length:]

    def _batch(self, histories: Sequence[Sequence[int]]) -> dict[str, Any]:
        import torch

        length = max(1, max((len(h) for h in histories), default=1))
        seq = torch.full((len(histories), length), PAD, dtype=torch.long)
        for n, h in enumerate(histories):
            if h:
                seq[n, :len(h)] = torch.tensor(h, dtype=torch.long)
        lengths = torch.tensor([max(1, len(h)) for h in histories], dtype=torch.long)
        return {"item_id_list": seq, "item_length": lengths}

    def _examples(self, seqs: dict[str, list[str]]
                  ) -> tuple[list[list[int]], list[tuple[list[int], int]]]:
        """(training windows, validation (history, target) per user). A user's sequence,
        its validation item held out, is cut from its end into windows of max_length + 1
        items; each window trains every position on the item after it."""
        windows: list[list[int]] = []
        valid: list[tuple[list[int], int]] = []
        cap = self.settings.max_length
        for user in sorted(seqs):
            ids = [self.index[i] for i in seqs[user]]
            if len(ids) >= 3:
                valid.append((ids[:-1][-cap:], ids[-1]))
                ids = ids[:-1]
            for end in range(len(ids), 1, -cap):
                windows.append(ids[max(0, end - cap - 1):end])
        return windows, valid

    # ---- training -------------------------------------------------------------------

    def _train(self, seqs: dict[str, list[str]], start: float) -> TrainingLog:
        import torch

        windows, valid = self._examples(seqs)
        optimiser = torch.optim.Adam(self.model.parameters(), lr=self.settings.learning_rate)
        order_rng = np.random.default_rng(self.settings.seed)
        best, best_epoch, best_state, epochs = -1.0, 0, copy.deepcopy(self.model.state_dict()), 0
        size = self.settings.batch_size
        for epoch in range(1, self.settings.max_epochs + 1):
            epochs = epoch
            self.model.train()
            order = order_rng.permutation(len(windows))
            for begin in range(0, len(order), size):
                chosen = [windows[i] for i in order[begin:begin + size]]
                batch = self._batch([w[:-1] for w in chosen])
                target = torch.full(batch["item_id_list"].shape, PAD, dtype=torch.long)
                for n, w in enumerate(chosen):
                    target[n, :len(w) - 1] = torch.tensor(w[1:], dtype=torch.long)
                optimiser.zero_grad()
                loss = self._loss(batch, target)
                loss.backward()
                optimiser.step()
            score = self._validate(valid) if valid else 0.0
            self.progress(f"{self.name} epoch {epoch}: validation NDCG@10 {score:.4f}")
            if score > best:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(self.model.state_dict())
            elif epoch - best_epoch >= self.settings.patience:
                break
        self.model.load_state_dict(best_state)
        self.model.eval()
        return TrainingLog(model=self.name, sequences=len(windows), validation_users=len(valid),
                           epochs=epochs, best_epoch=best_epoch,
                           best_validation_ndcg10=best, seconds=time.perf_counter() - start)

    def _loss(self, batch: dict[str, Any], target: Any) -> Any:
        """Cross-entropy over every item at every position of the windows (RecBole's CE
        loss, taken at each position instead of the last one only); padding is ignored."""
        import torch

        self.model.all_positions = True
        try:
            output = self.model(batch["item_id_list"], batch["item_length"])  # (B, L, H)
        finally:
            self.model.all_positions = False
        logits = output @ self.model.item_embedding.weight.T
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=PAD)

    def _validate(self, valid: Sequence[tuple[list[int], int]]) -> float:
        """Mean NDCG@10 of the validation targets, ranked among every item but the user's
        earlier ones (and padding)."""
        total = 0.0
        for begin in range(0, len(valid), 512):
            chunk = valid[begin:begin + 512]
            scores = self._score_ids([h for h, _ in chunk])
            for row, (history, target) in zip(scores, chunk, strict=True):
                row[[PAD, *history]] = -np.inf
                rank = int((row > row[target]).sum())
                total += 1.0 / math.log2(rank + 2) if rank < 10 else 0.0
        return total / len(valid)

    def _score_ids(self, histories: Sequence[list[int]]) -> np.ndarray:
        import torch
        from recbole.data.interaction import Interaction

        self.model.eval()
        with torch.no_grad(), _threads(1):
            out = self.model.full_sort_predict(Interaction(self._batch(histories)))
        return np.asarray(out.numpy(), dtype=np.float64)

    # ---- scoring --------------------------------------------------------------------

    def scores(self, history: Sequence[str]) -> dict[str, float]:
        """Every known item's score after `history` (oldest first; unknown items skipped)."""
        row = self._score_ids([self._encode(history)])[0]
        return {item: float(row[n + 1]) for n, item in enumerate(self.ids)}
