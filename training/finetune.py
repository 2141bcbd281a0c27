"""Fine-tuning the intent network: head initialised from frozen features, then the whole network.

Recipe (see DESIGN.md): mean pooling, short max length, a linear head first fitted on frozen
sentence embeddings (the strong frozen baseline is the starting point, not random), then AdamW
over everything with warm-up and linear decay, class-weighted loss, early stopping on validation.

With `train.processes` N > 1 the fit is data-parallel: this process is rank 0 and spawns ranks 1..N-1 for the
length of each fit (`_process_group`); every rank builds the same batches, trains on its share of each
(`_Run._shard`), the gradients are summed (`_sum_gradients`), and rank 0 alone evaluates, decides when to
stop, and keeps the weights for the rest of the pipeline.
"""

from __future__ import annotations

import math
import os
import random
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import torch
from torch import distributed as dist
from torch.nn import functional as F

from training.model import IntentModel, load_tokenizer
from training.settings import TrainSettings
from training.store import Example


@dataclass
class FitResult:
    model: IntentModel
    tokenizer: object
    labels: list[str]
    val_logits: torch.Tensor  # uncalibrated logits of the validation examples (empty without validation)
    val_targets: torch.Tensor
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    device: str = "cpu"
    # pooled features for the out-of-scope scores (training.oos): of the validation examples and the training
    # part by the model that did not see the validation examples; `bank_*`: of all the examples the
    # returned model was trained on (the same as fit_* unless a small-data refit ran)
    val_features: torch.Tensor | None = None
    fit_features: torch.Tensor | None = None
    fit_targets: torch.Tensor | None = None
    bank_features: torch.Tensor | None = None
    bank_targets: torch.Tensor | None = None


def choose_device(name: str, processes: int = 1) -> torch.device:
    """Rank 0's device (rank r of a CUDA fit uses cuda:r); on CPU the cores are split between the processes.
    A setting this machine cannot meet is a ValueError (the CLI prints it and exits 2)."""
    if name == "cuda" or (name == "auto" and torch.cuda.is_available()):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count < processes:
            raise ValueError(f"training on CUDA in {processes} process(es) (--gpus {processes}; train.device=cuda, "
                             f"train.processes={processes}) needs {processes} CUDA device(s); this machine has {count}")
        return torch.device("cuda")
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    return torch.device("cpu")


def finetune(
    train: Sequence[Example], val: Sequence[Example], base: Path, settings: TrainSettings, progress: bool = True
) -> FitResult:
    """Train on `train`, early-stop and calibrate on `val`; refit on both when data is small."""
    started = time.time()
    labels = sorted({e.intent for e in train} | {e.intent for e in val})
    device = choose_device(settings.device, settings.processes)
    tokenizer = load_tokenizer(base)
    run = _Run(train, val, labels, base, tokenizer, settings, device, progress)
    model, best_steps, val_logits, history = run.fit(train, val, max_steps=None)
    val_features, fit_features = run.features(model, val), run.features(model, train)
    bank, bank_examples = fit_features, train
    if val and len(train) + len(val) < settings.refit_below:
        # small data: the validation examples are too valuable to leave out of the final model
        model, *_ = run.fit([*train, *val], [], max_steps=best_steps, stage="refit on all data")
        bank_examples = [*train, *val]
        bank = run.features(model, bank_examples)
    targets = torch.tensor([labels.index(e.intent) for e in val], dtype=torch.long)
    index = lambda examples: torch.tensor([labels.index(e.intent) for e in examples], dtype=torch.long)  # noqa: E731
    return FitResult(model.cpu().eval(), tokenizer, labels, val_logits, targets, history, time.time() - started,
                     device.type, val_features=val_features, fit_features=fit_features, fit_targets=index(train),
                     bank_features=bank, bank_targets=index(bank_examples))


class _Run:
    def __init__(self, train, val, labels, base, tokenizer, settings: TrainSettings, device, progress, rank: int = 0):
        self.labels, self.base, self.tokenizer, self.s = labels, base, tokenizer, settings
        self.device, self.progress = device, progress
        self.rank, self.world = rank, settings.processes
        self.index = {name: i for i, name in enumerate(labels)}
        counts = Counter(e.intent for e in [*train, *val])
        weights = torch.tensor([counts[name] ** -0.5 for name in labels], dtype=torch.float)
        self.class_weights = (weights / weights.mean()) if settings.class_weighting else None
        self.amp = device.type == "cuda"

    def fit(self, train, val, max_steps: int | None, stage: str = "fine-tuning"):
        """One training run (data-parallel in `train.processes` processes when above 1); returns the best model,
        the steps that reached it, val logits, history."""
        if self.world == 1:
            return self._fit(train, val, max_steps, stage)
        with _process_group(self, train, val, max_steps):
            return self._fit(train, val, max_steps, stage)

    def _fit(self, train, val, max_steps: int | None, stage: str = "fine-tuning"):
        s = self.s
        torch.manual_seed(s.seed)
        rng = random.Random(s.seed)
        model = IntentModel.from_base(self.base, len(self.labels)).to(self.device)
        train_ids, train_y = self._encode(train)
        if self.rank == 0:
            self._init_head(model, train_ids, train_y)
        if self.world > 1:
            for tensor in model.state_dict().values():  # every rank starts from rank 0's weights
                dist.broadcast(tensor, 0)

        per_epoch = math.ceil(len(train_ids) / s.batch_size)
        total = max_steps or max(s.epochs * per_epoch, min(s.min_steps, 50 * per_epoch))
        eval_every = per_epoch if max_steps is None else total + 1
        encoder_params = [p for n, p in model.named_parameters() if not n.startswith("head.")]
        optimizer = torch.optim.AdamW(
            [{"params": encoder_params, "lr": s.encoder_lr}, {"params": model.head.parameters(), "lr": s.head_lr}],
            weight_decay=s.weight_decay,
        )
        warmup = max(1, int(total * s.warmup))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: min((step + 1) / warmup, max(0.0, (total - step) / max(1, total - warmup)))
        )
        weights = None if self.class_weights is None else self.class_weights.to(self.device)
        val_ids, val_y = self._encode(val)
        best = math.inf
        best_state, best_steps, history, stale, step = None, total, [], 0, 0
        bar = _progress_bar(total, self.progress and self.rank == 0, stage)
        while step < total and stale < s.patience:
            for batch in self._batch_indices(train_ids, rng, shuffle=True):
                mine, share = self._shard(batch, train_y)
                input_ids, mask, y = self._tensors(train_ids, train_y, mine)
                model.train()
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    logits = model(input_ids.to(self.device), mask.to(self.device))
                loss = F.cross_entropy(logits.float(), y.to(self.device), weight=weights)
                if self.world == 1:
                    loss.backward()
                else:
                    (loss * share).backward()
                    _sum_gradients(model)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
                if step % eval_every == 0 and val_ids:
                    if self.rank == 0:
                        logits = self.logits(model, val_ids)
                        acc = (logits.argmax(-1) == torch.tensor(val_y)).float().mean().item()
                        val_loss = F.cross_entropy(logits, torch.tensor(val_y)).item()
                        history.append({"step": step, "val_accuracy": acc, "val_loss": val_loss})
                        bar.set_postfix(loss=f"{loss.item():.3f}", val_acc=f"{acc:.3f}")
                        if val_loss < best:  # loss, not accuracy: far less noisy on small validation sets
                            best, best_steps, stale = val_loss, step, 0
                            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
                        else:
                            stale += 1
                    if self.world > 1:
                        stale = self._from_rank0(stale)  # every rank stops at the same step
                    if stale >= s.patience:
                        break
                if step >= total:
                    break
        bar.close()
        if self.rank > 0:
            return None
        if best_state is not None:
            model.load_state_dict(best_state)
        val_logits = self.logits(model, val_ids) if val_ids else torch.zeros(0, len(self.labels))
        return model, best_steps, val_logits, history

    def _encode(self, examples):
        texts = [e.text for e in examples]
        ids = self.tokenizer(texts, truncation=True, max_length=self.s.max_length)["input_ids"] if texts else []
        return ids, [self.index[e.intent] for e in examples]

    def _batch_indices(self, ids, rng: random.Random, shuffle: bool) -> list[list[int]]:
        """Length-bucketed batches (less padding): shuffled for training, in `_bucketed` order otherwise."""
        order = list(range(len(ids)))
        if shuffle:
            rng.shuffle(order)
        order = _bucketed(order, ids, self.s.batch_size)
        size = self.s.batch_size
        batches = [order[i : i + size] for i in range(0, len(order), size)]
        if shuffle:
            rng.shuffle(batches)
        return batches

    def _batches(self, ids, y, rng: random.Random, shuffle: bool):
        for batch in self._batch_indices(ids, rng, shuffle):
            yield self._tensors(ids, y, batch)

    def _tensors(self, ids, y, batch: list[int]):
        input_ids, mask = pad([ids[i] for i in batch], self.tokenizer.pad_token_id)
        return input_ids, mask, torch.tensor([y[i] for i in batch], dtype=torch.long)

    def _shard(self, batch: list[int], y) -> tuple[list[int], float]:
        """This rank's examples of a batch (every `world`-th one, so lengths stay balanced) and their share of
        the batch's loss weight: the shares add up to 1 over the ranks, so the summed gradients are those of the
        whole batch in one process. A rank with no example in a short last batch runs one at share 0, so every
        rank takes part in the gradient sum."""
        if self.world == 1:
            return batch, 1.0
        mine = batch[self.rank :: self.world]
        if not mine:
            return batch[:1], 0.0
        weight = (lambda part: len(part)) if self.class_weights is None else (
            lambda part: self.class_weights[[y[i] for i in part]].sum().item())
        return mine, weight(mine) / weight(batch)

    def _from_rank0(self, value: int) -> int:
        tensor = torch.tensor([value], device=self.device)
        dist.broadcast(tensor, 0)
        return int(tensor.item())

    def logits(self, model: IntentModel, ids) -> torch.Tensor:
        return self._forward(model, ids, model)

    def _embed_all(self, model: IntentModel, ids) -> torch.Tensor:
        return self._forward(model, ids, model.embed)

    def features(self, model: IntentModel, examples) -> torch.Tensor:
        """Pooled normalised features of `examples` (rows in their order)."""
        ids, _ = self._encode(examples)
        return self._embed_all(model, ids) if ids else torch.zeros(0, model.head.in_features)

    @torch.no_grad()
    def _forward(self, model: IntentModel, ids, function) -> torch.Tensor:
        """`function(input_ids, mask)` over all `ids` in batches, rows in the input order."""
        model.eval()
        out = []
        for input_ids, mask, _ in self._batches(ids, [0] * len(ids), random.Random(0), shuffle=False):
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out.append(function(input_ids.to(self.device), mask.to(self.device)).float().cpu())
        result = torch.cat(out)
        restored = torch.empty_like(result)
        restored[torch.tensor(_bucketed(list(range(len(ids))), ids, self.s.batch_size))] = result
        return restored

    def _init_head(self, model: IntentModel, ids, y) -> None:
        """Fit the head as a logistic regression on frozen embeddings (full-batch L-BFGS)."""
        features = self._embed_all(model, ids)
        targets = torch.tensor(y, dtype=torch.long)
        head = torch.nn.Linear(features.shape[1], len(self.labels))
        optimizer = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=200, line_search_fn="strong_wolfe")
        weights = self.class_weights

        def closure():
            optimizer.zero_grad()
            loss = F.cross_entropy(head(features), targets, weight=weights) + 1e-4 * head.weight.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        model.head.load_state_dict(head.state_dict())
        model.head.to(self.device)


def _sum_gradients(model: IntentModel) -> None:
    """All-reduce (sum) the gradients of every rank, in one flat tensor."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    for grad, part in zip(grads, flat.split([g.numel() for g in grads])):
        grad.copy_(part.view_as(grad))


@contextmanager
def _process_group(run: _Run, train, val, max_steps: int | None):
    """Ranks 1..N-1 of a data-parallel fit, spawned for its length, with this process as rank 0 (gloo on CPU,
    NCCL on CUDA; they meet through a file in a scratch folder, so no port is chosen)."""
    with tempfile.TemporaryDirectory(prefix="supportbot-fit-") as scratch:
        args = (run.world, scratch, train, val, run.labels, run.base, run.s, run.device.type, max_steps)
        helpers = torch.multiprocessing.start_processes(_helper, args, nprocs=run.world - 1, join=False,
                                                        daemon=True, start_method="spawn")
        try:
            # a helper that dies before the rendezvous raises here, not after torch's 30-minute wait for it
            while not all(Path(scratch, f"started-{rank}").exists() for rank in range(1, run.world)):
                if helpers.join(timeout=0.2):
                    raise RuntimeError("the data-parallel helpers exited before the rendezvous")
            _join_group(0, run.world, scratch, run.device)
            try:
                yield
            finally:
                dist.destroy_process_group()
            while not helpers.join():
                pass
        except BaseException:
            try:
                helpers.join(timeout=5)  # raises a helper's own error, which says more than a broken connection
            finally:
                for process in helpers.processes:
                    if process.is_alive():
                        process.kill()
            raise


def _helper(index: int, world: int, scratch: str, train, val, labels, base, settings, device_type: str, max_steps):
    """Rank index+1 of a data-parallel fit (a spawned process): trains its shards, keeps nothing."""
    rank = index + 1
    device = torch.device("cuda", rank) if device_type == "cuda" else choose_device("cpu", world)
    Path(scratch, f"started-{rank}").touch()
    _join_group(rank, world, scratch, device)
    try:
        _Run(train, val, labels, base, load_tokenizer(base), settings, device, False, rank)._fit(train, val, max_steps)
    finally:
        dist.destroy_process_group()


def _join_group(rank: int, world: int, scratch: str, device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.set_device(device.index or 0)
    init = Path(scratch, "rendezvous").as_uri()
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=init, rank=rank,
                            world_size=world)


def _bucketed(order: list[int], ids, size: int) -> list[int]:
    """`order` sorted by sequence length within chunks of 50 batches."""
    chunk = size * 50
    return [i for start in range(0, len(order), chunk) for i in sorted(order[start : start + chunk], key=lambda i: len(ids[i]))]


def pad(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic padding to the longest sequence of the batch."""
    width = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def _progress_bar(total: int, enabled: bool, stage: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=stage, unit="step", disable=not enabled, dynamic_ncols=True)
