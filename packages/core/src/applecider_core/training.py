"""The one training loop every modality uses (Hugging Face Accelerate).

seed → build loaders → one ``accelerator.prepare`` → AdamW + warm-up/cosine schedule (transformers helpers)
→ AMP, gradient accumulation and clipping → evaluation with ``gather_for_metrics`` every epoch → EMA weights
for evaluation and saving → early stopping on a validation metric → ``save_state`` checkpoints every N steps
and at each epoch end, ``load_state`` to resume → the best model written with ``save_pretrained`` by the main
process. The same code runs on one CPU, one GPU, or under ``accelerate launch`` on several processes.

Contract with models: ``model(**batch)`` where ``batch`` is a dict of tensors that includes ``labels``; it
returns a ``ClassifierOutput`` whose ``loss`` already includes any auxiliary loss. The model has a ``config``
and ``save_pretrained`` (``PretrainedMixin``).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, set_seed
from torch import nn
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm.auto import tqdm

from .config import save_yaml
from .ema import EMA
from .metrics import classification_report, softmax

logger = logging.getLogger(__name__)

SCHEDULES = ("cosine", "constant", "linear", "cosine_restarts")
PRECISIONS = ("auto", "no", "bf16", "fp16")


@dataclass
class TrainingConfig:
    """Run settings of the shared loop (architecture lives in the model config)."""

    output_dir: str = "runs/default"
    seed: int = 0
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimiser steps (smoke runs)
    batch_size: int = 32
    eval_batch_size: int | None = None
    learning_rate: float = 3e-4
    weight_decay: float = 1e-2
    warmup_steps: int = 0
    warmup_epochs: float = 0.0  # added to warmup_steps, in epochs
    schedule: str = "cosine"  # one of SCHEDULES
    restarts: int = 1  # cycles for cosine_restarts
    mixed_precision: str = "auto"  # auto: bf16 (or fp16) on CUDA, fp32 on CPU
    grad_clip_norm: float | None = 1.0
    gradient_accumulation_steps: int = 1
    monitor: str = "macro_f1"  # validation metric for early stopping and best-model selection
    monitor_mode: str = "max"  # max | min
    patience: int | None = 5  # epochs without improvement before stopping; None: never stop early
    ema_decay: float | None = 0.999  # None disables EMA
    checkpoint_every_steps: int | None = None  # in addition to every epoch end
    keep_checkpoints: int = 2
    resume: bool = True  # continue from output_dir/checkpoints/ when one exists
    num_workers: int = 0
    threads: int | None = None  # torch CPU threads while training (None: torch's default, one per core; 1 beside
    #                             other jobs: two threads on a shared 2-core box ran ~20x slower, docs/BENCHMARKS.md)
    log_every_steps: int = 10
    cpu: bool = False  # force CPU even if a GPU is visible

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.mixed_precision not in PRECISIONS:
            raise ValueError(f"mixed_precision must be one of {PRECISIONS}, got {self.mixed_precision!r}")
        if self.monitor_mode not in ("max", "min"):
            raise ValueError(f"monitor_mode must be 'max' or 'min', got {self.monitor_mode!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be at least 1 (or null for torch's default), got {self.threads}")


@dataclass
class TrainResult:
    best_metrics: dict[str, Any]
    best_step: int
    model_dir: Path
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _State:
    epoch: int = 0
    global_step: int = 0
    batches_done_in_epoch: int = 0
    best_value: float | None = None
    best_step: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def resolve_precision(requested: str, cpu: bool = False) -> str:
    if requested != "auto":
        return requested
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _scheduler(optimizer, config: TrainingConfig, total_steps: int, warmup: int):
    from transformers import optimization as sched

    if config.schedule == "cosine":
        return sched.get_cosine_schedule_with_warmup(optimizer, warmup, total_steps)
    if config.schedule == "linear":
        return sched.get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
    if config.schedule == "cosine_restarts":
        return sched.get_cosine_with_hard_restarts_schedule_with_warmup(optimizer, warmup, total_steps, config.restarts)
    return sched.get_constant_schedule_with_warmup(optimizer, warmup)


def default_param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases and normalisation weights (1-D tensors)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def classification_metrics(class_names) -> Callable[[np.ndarray, np.ndarray], dict]:
    """Default ``compute_metrics``: the core classification report on softmax(logits)."""

    def compute(logits: np.ndarray, labels: np.ndarray) -> dict:
        return classification_report(softmax(logits), labels, class_names)

    return compute


def _improved(value: float, best: float | None, mode: str) -> bool:
    if not math.isfinite(value):
        return False
    return best is None or (value > best if mode == "max" else value < best)


def _checkpoints(root: Path) -> list[Path]:
    return sorted(root.glob("step_*"), key=lambda p: int(p.name.split("_")[1]))


class Trainer:
    """Holds what one ``fit`` needs; use :func:`train` unless you need the pieces."""

    def __init__(
        self,
        model: nn.Module,
        train_dataset: Dataset,
        val_dataset: Dataset | None,
        config: TrainingConfig,
        *,
        collate_fn: Callable | None = None,
        compute_metrics: Callable[[np.ndarray, np.ndarray], dict] | None = None,
        param_groups: list[dict[str, Any]] | None = None,
        train_sampler: Sampler | None = None,
        on_epoch_start: Callable[[int, nn.Module], None] | None = None,
        preprocessor: dict[str, Any] | None = None,
        run_config: Any = None,
    ) -> None:
        self.config = config
        self.output_dir = Path(config.output_dir)
        self.checkpoint_root = self.output_dir / "checkpoints"
        self.model_dir = self.output_dir / "model"
        self.accelerator = Accelerator(
            mixed_precision=resolve_precision(config.mixed_precision, config.cpu),
            gradient_accumulation_steps=config.gradient_accumulation_steps,
            # Without a GPU, CPU mode is what makes torchrun/`accelerate launch` processes join over gloo.
            cpu=config.cpu or not torch.cuda.is_available(),
            dataloader_config=DataLoaderConfiguration(use_seedable_sampler=train_sampler is None),
        )
        set_seed(config.seed)
        self.on_epoch_start = on_epoch_start
        self.preprocessor = preprocessor
        self.compute_metrics = compute_metrics or classification_metrics(model.config.class_names)
        train_loader = DataLoader(
            train_dataset, batch_size=config.batch_size, shuffle=train_sampler is None, sampler=train_sampler,
            collate_fn=collate_fn, num_workers=config.num_workers, drop_last=False,
        )  # fmt: skip
        val_loader = None
        if val_dataset is not None:
            val_loader = DataLoader(
                val_dataset, batch_size=config.eval_batch_size or config.batch_size, shuffle=False,
                collate_fn=collate_fn, num_workers=config.num_workers,
            )  # fmt: skip
        groups = param_groups or default_param_groups(model, config.weight_decay)
        optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, weight_decay=config.weight_decay)
        steps_per_epoch = math.ceil(len(train_loader) / (config.gradient_accumulation_steps * self.accelerator.num_processes))
        self.total_steps = config.max_steps or max(1, steps_per_epoch * config.epochs)
        warmup = config.warmup_steps + int(config.warmup_epochs * steps_per_epoch)
        scheduler = _scheduler(optimizer, config, self.total_steps, min(warmup, self.total_steps))
        self.model, self.optimizer, self.train_loader, self.scheduler = self.accelerator.prepare(
            model, optimizer, train_loader, scheduler
        )
        self.val_loader = self.accelerator.prepare(val_loader) if val_loader is not None else None
        self.ema = EMA(self.accelerator.unwrap_model(self.model), config.ema_decay) if config.ema_decay else None
        if self.ema is not None:
            self.accelerator.register_for_checkpointing(self.ema)
        self.state = _State()
        if self.accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_yaml(run_config if run_config is not None else config, self.output_dir / "config.yaml")

    # ---- checkpoints -------------------------------------------------------------------------------------
    def save_checkpoint(self) -> Path:
        path = self.checkpoint_root / f"step_{self.state.global_step:08d}"
        self.accelerator.save_state(str(path))
        if self.accelerator.is_main_process:
            (path / "trainer_state.json").write_text(json.dumps(self.state.__dict__, indent=1))
            for old in _checkpoints(self.checkpoint_root)[: -self.config.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()
        return path

    def maybe_resume(self) -> bool:
        existing = _checkpoints(self.checkpoint_root) if self.config.resume else []
        if not existing:
            return False
        path = existing[-1]
        self.accelerator.load_state(str(path))
        self.state = _State(**json.loads((path / "trainer_state.json").read_text()))
        logger.info("resumed from %s at step %d (epoch %d)", path, self.state.global_step, self.state.epoch)
        return True

    # ---- evaluation --------------------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, loader) -> tuple[np.ndarray, np.ndarray]:
        """Logits and labels over a prepared loader, gathered from every process (padding removed)."""
        self.model.eval()
        all_logits, all_labels = [], []
        for batch in loader:
            logits = self.model(**{k: v for k, v in batch.items() if k != "labels"}).logits
            logits, labels = self.accelerator.gather_for_metrics((logits.float(), batch["labels"]))
            all_logits.append(logits.cpu().numpy())
            all_labels.append(labels.cpu().numpy())
        self.model.train()
        return np.concatenate(all_logits), np.concatenate(all_labels)

    def evaluate(self) -> dict[str, Any]:
        if self.val_loader is None:
            return {}
        unwrapped = self.accelerator.unwrap_model(self.model)
        if self.ema is None:
            logits, labels = self.predict(self.val_loader)
        else:
            with self.ema.apply_to(unwrapped):
                logits, labels = self.predict(self.val_loader)
        return self.compute_metrics(logits, labels)

    def save_model(self) -> None:
        """Write the current (EMA) weights with save_pretrained on the main process."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            unwrapped = self.accelerator.unwrap_model(self.model)
            if self.ema is None:
                unwrapped.save_pretrained(self.model_dir, self.preprocessor)
            else:
                with self.ema.apply_to(unwrapped):
                    unwrapped.save_pretrained(self.model_dir, self.preprocessor)
        self.accelerator.wait_for_everyone()

    # ---- training ----------------------------------------------------------------------------------------
    def _end_epoch(self, train_loss: float, completed: bool = True) -> bool:
        """Evaluate, keep the best model, update early stopping, checkpoint. Returns True to stop.

        ``completed`` is False when the step budget ran out mid-epoch: the checkpoint then records the
        position inside the epoch so that a resumed run with a larger budget continues exactly there.
        """
        cfg, state = self.config, self.state
        metrics = self.evaluate()
        entry = {"epoch": state.epoch, "step": state.global_step, "train_loss": train_loss}
        entry.update({k: v for k, v in metrics.items() if isinstance(v, (int, float))})
        state.history.append(entry)
        value = metrics.get(cfg.monitor, float("nan")) if metrics else -state.epoch
        if not metrics or _improved(float(value), state.best_value, cfg.monitor_mode):
            state.best_value, state.best_step, state.bad_epochs = float(value), state.global_step, 0
            self.save_model()
            if self.accelerator.is_main_process and metrics:
                (self.output_dir / "metrics.json").write_text(json.dumps(metrics, indent=1))
        else:
            state.bad_epochs += 1
        if self.accelerator.is_main_process:
            logger.info("epoch %d step %d: %s", state.epoch, state.global_step,
                        {k: round(v, 4) for k, v in entry.items() if isinstance(v, float)})
            (self.output_dir / "history.json").write_text(json.dumps(state.history, indent=1))
        if completed:
            state.epoch += 1
            state.batches_done_in_epoch = 0
        self.save_checkpoint()
        return cfg.patience is not None and state.bad_epochs >= cfg.patience

    def fit(self) -> TrainResult:
        """Train to the end (resuming from the latest checkpoint) on ``threads`` torch threads when set."""
        before = torch.get_num_threads()
        if self.config.threads:
            torch.set_num_threads(self.config.threads)
        try:
            return self._fit()
        finally:
            torch.set_num_threads(before)

    def _fit(self) -> TrainResult:
        self.maybe_resume()
        cfg, state, acc = self.config, self.state, self.accelerator
        self.model.train()
        max_epochs = math.inf if cfg.max_steps else cfg.epochs
        progress = tqdm(total=self.total_steps, initial=state.global_step, disable=not acc.is_local_main_process,
                        desc="train", dynamic_ncols=True)
        while state.global_step < self.total_steps and state.epoch < max_epochs:
            set_seed(cfg.seed + state.epoch)  # sampling and augmentation are a function of (seed, epoch)
            if hasattr(self.train_loader, "set_epoch"):
                self.train_loader.set_epoch(state.epoch)
            if self.on_epoch_start is not None:
                self.on_epoch_start(state.epoch, acc.unwrap_model(self.model))
            loader = self.train_loader
            if state.batches_done_in_epoch:
                loader = acc.skip_first_batches(self.train_loader, state.batches_done_in_epoch)
            losses, completed = [], True
            for batch in loader:
                with acc.accumulate(self.model):
                    output = self.model(**batch)
                    acc.backward(output.loss)
                    if acc.sync_gradients and cfg.grad_clip_norm:
                        acc.clip_grad_norm_(self.model.parameters(), cfg.grad_clip_norm)
                    self.optimizer.step()
                    self.scheduler.step()
                    self.optimizer.zero_grad()
                state.batches_done_in_epoch += 1
                losses.append(output.loss.detach().float().item())
                if not acc.sync_gradients:
                    continue
                state.global_step += 1
                progress.update(1)
                if self.ema is not None:
                    self.ema.update(acc.unwrap_model(self.model))
                if state.global_step % cfg.log_every_steps == 0:
                    progress.set_postfix(loss=f"{np.mean(losses[-cfg.log_every_steps:]):.4f}")
                if cfg.checkpoint_every_steps and state.global_step % cfg.checkpoint_every_steps == 0:
                    self.save_checkpoint()
                if state.global_step >= self.total_steps:
                    completed = state.batches_done_in_epoch >= len(self.train_loader)
                    break
            if self._end_epoch(float(np.mean(losses)) if losses else float("nan"), completed):
                break
        progress.close()
        if not (self.model_dir / "config.json").exists():
            self.save_model()
        metrics_path = self.output_dir / "metrics.json"
        best = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        acc.wait_for_everyone()
        return TrainResult(best, state.best_step, self.model_dir, state.history)


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch. Call it before building a model: its initial weights come from torch's
    global generator, which :class:`Trainer` seeds only after the model exists."""
    set_seed(seed)


def train(model: nn.Module, train_dataset: Dataset, val_dataset: Dataset | None, config: TrainingConfig,
          **kwargs: Any) -> TrainResult:
    """Train ``model`` with the shared loop; see :class:`Trainer` for the keyword arguments."""
    return Trainer(model, train_dataset, val_dataset, config, **kwargs).fit()


@torch.no_grad()
def predict(model: nn.Module, dataset: Dataset, collate_fn: Callable | None = None, batch_size: int = 64,
            device: str | torch.device = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Single-process inference for evaluation scripts: (logits (N, C), labels (N,))."""
    model = model.to(device).eval()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate_fn)
    logits, labels = [], []
    for batch in loader:
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        logits.append(model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float().cpu().numpy())
        labels.append(batch["labels"].cpu().numpy())
    return np.concatenate(logits), np.concatenate(labels)


__all__ = ["TrainResult", "Trainer", "TrainingConfig", "classification_metrics", "predict", "train"]
