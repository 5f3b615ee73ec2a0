"""The LSD training loop on accelerate (single device, multi-GPU, multi-node via ``accelerate launch``).

Per optimizer step: ``grad_accum`` micro-batches, each loss divided by ``grad_accum``, gradients
synchronised only on the last; then grad-norm clipping, AdamW (encoder group at
``lr * encoder_lr_scale``), the LR schedule. Checkpoints every ``checkpoint.every`` steps under
``<output_dir>/checkpoints/checkpoint-<step>/``: ``model/`` (``LatentSlotDiffusion`` folder),
``training_state.pt`` (optimizer, LR scheduler, step, RNG states), ``train_config.json`` (the
resolved config) and ``trainer_state.json``; each written to a temporary folder and renamed, the
oldest beyond ``checkpoint.total_limit`` removed. All randomness is keyed by step (see
:mod:`lsd.training.data`), so ``resume="latest"`` reproduces an uninterrupted run bitwise on CPU.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lsd.configs import load_config
from lsd.training.config import TrainConfig

CHECKPOINT_PREFIX = "checkpoint-"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the step and the saved last good checkpoint."""


@dataclass
class TrainResult:
    step: int
    output_dir: Path
    checkpoint: Path | None
    seconds: float


def list_checkpoints(output_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary folders start with '.')."""
    folder = Path(output_dir) / "checkpoints"
    if not folder.is_dir():
        return []
    found = [
        p for p in folder.iterdir() if p.name.startswith(CHECKPOINT_PREFIX) and (p / "trainer_state.json").is_file()
    ]
    return sorted(found, key=lambda p: int(p.name.removeprefix(CHECKPOINT_PREFIX)))


def resolve_resume(resume: str | os.PathLike | None, output_dir: str | os.PathLike) -> Path | None:
    """``None``, ``"latest"`` (newest complete checkpoint, or a fresh start when there is none) or a path."""
    if resume is None:
        return None
    if str(resume) == "latest":
        found = list_checkpoints(output_dir)
        return found[-1] if found else None
    path = Path(resume)
    if not (path / "trainer_state.json").is_file():
        raise FileNotFoundError(f"{path} is not a complete lsd training checkpoint (no trainer_state.json)")
    return path


def same_model_config(saved: str | dict | None, current: str | dict) -> bool:
    """Whether a checkpoint's model config (a name, path or dict, as saved) builds the same model
    as ``current``: equal after resolving both, ignoring ``name`` and ``description``."""
    if saved is None:
        return False
    if saved == current:
        return True
    try:
        resolved = load_config(saved)
    except (FileNotFoundError, ValueError):
        return False
    ignored = ("name", "description")
    current_resolved = load_config(current)
    return {k: v for k, v in resolved.items() if k not in ignored} == {
        k: v for k, v in current_resolved.items() if k not in ignored
    }


def load_initial_weights(
    model: torch.nn.Module, source: str | os.PathLike, components: list[str] | None = None
) -> Path:
    """Copy the weights of an lsd model folder (or of a training checkpoint's ``model/``) into
    ``model``; returns the folder read. Every parameter and buffer must exist in both with the
    same shape (a Gaussian slot init has no per-slot weights, so ``num_slots`` may differ).
    ``components`` (e.g. ``["backbone", "slot_attention"]``) limits both the copy and the check to
    those components; the rest of ``model`` is left as it is."""
    from lsd.models.lsd import LatentSlotDiffusion

    path = Path(source)
    folder = path if (path / "lsd_config.json").is_file() else path / "model"
    if not (folder / "lsd_config.json").is_file():
        raise FileNotFoundError(
            f"init_from {source}: no lsd_config.json in it or in its model/ (expected an lsd model folder "
            "or a training checkpoint)"
        )
    source_state = LatentSlotDiffusion.from_pretrained(folder).state_dict()
    target_state = model.state_dict()
    if components is not None:
        prefixes = tuple(f"{name}." for name in components)
        source_state = {k: v for k, v in source_state.items() if k.startswith(prefixes)}
        target_state = {k: v for k, v in target_state.items() if k.startswith(prefixes)}
    missing = sorted(set(target_state) - set(source_state))
    unexpected = sorted(set(source_state) - set(target_state))
    reshaped = sorted(
        k for k in set(target_state) & set(source_state) if target_state[k].shape != source_state[k].shape
    )
    if missing or unexpected or reshaped:
        details = [
            f"{what}: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}"
            for what, names in (
                ("missing there", missing),
                ("not in this model", unexpected),
                ("other shape", reshaped),
            )
            if names
        ]
        raise ValueError(f"init_from {folder}: weights do not fit this run's model ({'; '.join(details)})")
    model.load_state_dict(source_state, strict=components is None)
    return folder


def _rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


class Trainer:
    """Builds data, autoencoder, model and optimizer from a :class:`TrainConfig` and trains.

    ``on_step_end(step, trainer)`` is called after every optimizer step (tests use it to
    interrupt a run at a chosen point).
    """

    def __init__(self, config: TrainConfig, on_step_end: Callable[[int, Trainer], None] | None = None) -> None:
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        from lsd.configs import build_model
        from lsd.training.autoencoder import provide_autoencoder
        from lsd.training.data import BatchSchedule, build_train_dataset

        self.config = config
        self.on_step_end = on_step_end
        self.output_dir = Path(config.output_dir)
        loop = config.train
        cpu = not torch.cuda.is_available()
        if cpu and loop.mixed_precision == "fp16":
            raise ValueError("train.mixed_precision='fp16' needs a GPU; use 'bf16' or 'no' on CPU")
        self.accelerator = Accelerator(
            mixed_precision=loop.mixed_precision, cpu=cpu, log_with="tensorboard", project_dir=str(self.output_dir)
        )
        acc = self.accelerator
        set_seed(loop.seed)
        self.dataset = build_train_dataset(config.data, seed=loop.seed)
        self.schedule = BatchSchedule(len(self.dataset), loop.batch_size, acc.num_processes, loop.seed, loop.grad_accum)
        with acc.main_process_first():  # the autoencoder stage trains/caches once
            vae = provide_autoencoder(
                config.autoencoder, self.dataset, self.output_dir.parent / "autoencoders", loop.seed
            )
        components = {} if vae is None else {"vae": vae}
        set_seed(loop.seed)  # model init independent of what the stages above consumed
        model = build_model(config.model, **components)
        if model.vae is None:
            raise ValueError("the model has no autoencoder: set autoencoder.kind or the model config's vae entry")
        groups = model.parameter_groups()
        opt = config.optim
        param_groups = [
            {"params": groups["encoder"], "lr": opt.lr * opt.encoder_lr_scale, "name": "encoder"},
            {"params": groups["decoder"], "lr": opt.lr, "name": "decoder"},
        ]
        param_groups = [g for g in param_groups if g["params"]]
        optimizer = torch.optim.AdamW(
            param_groups, lr=opt.lr, betas=tuple(opt.betas), weight_decay=opt.weight_decay, eps=opt.eps
        )
        from diffusers.optimization import get_scheduler

        lr_scheduler = get_scheduler(
            opt.lr_scheduler, optimizer, num_warmup_steps=opt.warmup_steps, num_training_steps=loop.max_steps
        )
        self.model, self.optimizer, self.lr_scheduler = acc.prepare(model, optimizer, lr_scheduler)
        self.trainable = [p for g in param_groups for p in g["params"]]
        self.step = 0

    # -- state ---------------------------------------------------------------------------------
    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model)

    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> Path:
        """Write ``checkpoint-<step>`` atomically (main process) and prune old ones."""
        acc = self.accelerator
        target = self.output_dir / "checkpoints" / f"{CHECKPOINT_PREFIX}{self.step:08d}"
        if acc.is_main_process:
            target.parent.mkdir(parents=True, exist_ok=True)
            for stale in target.parent.glob(f".{CHECKPOINT_PREFIX}*"):  # left by a killed run
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
            try:
                self.unwrapped.save_pretrained(tmp / "model")
                torch.save(
                    {
                        "optimizer": self.optimizer.state_dict(),
                        "lr_scheduler": self.lr_scheduler.state_dict(),
                        "step": self.step,
                        "rng": _rng_state(),
                    },
                    tmp / "training_state.pt",
                )
                record = self.config.to_dict()
                record["model"] = load_config(self.config.model)  # self-contained: resumable without the file
                (tmp / "train_config.json").write_text(json.dumps(record, indent=2) + "\n")
                state = {"step": self.step, "micro_step": self.step * self.config.train.grad_accum, **(extra or {})}
                (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2) + "\n")
                if target.exists():
                    shutil.rmtree(target)
                os.replace(tmp, target)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            limit = self.config.checkpoint.total_limit
            if limit is not None:
                for old in list_checkpoints(self.output_dir)[:-limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return target

    def load_checkpoint(self, path: Path) -> None:
        """Restore model weights, optimizer, LR scheduler, step and RNG states from ``path``."""
        from lsd.models.lsd import LatentSlotDiffusion

        saved = json.loads((path / "train_config.json").read_text())
        if not same_model_config(saved.get("model"), self.config.model):
            raise ValueError(f"{path} was trained with a different model config than this run's `model`")
        loaded = LatentSlotDiffusion.from_pretrained(path / "model")
        self.unwrapped.load_state_dict(loaded.state_dict())
        state = torch.load(path / "training_state.pt", map_location="cpu", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        _set_rng_state(state["rng"])
        self.step = int(state["step"])

    # -- loop ----------------------------------------------------------------------------------
    def _loader(self, start_micro: int, stop_micro: int) -> DataLoader:
        from lsd.training.data import EpochIndexed, ScheduleSampler

        sampler = ScheduleSampler(self.schedule, self.accelerator.process_index, start_micro, stop_micro)
        workers = self.config.data.num_workers
        return DataLoader(
            EpochIndexed(self.dataset), batch_sampler=sampler, num_workers=workers, persistent_workers=False
        )

    def _micro_batch_loss(self, batch: dict[str, Any], micro_step: int, **kwargs: Any):
        acc = self.accelerator
        generators = self.schedule.generators(micro_step, acc.process_index)
        extra = {}
        if "backbone_pixel_values" in batch:
            extra["backbone_pixel_values"] = batch["backbone_pixel_values"].to(acc.device)
        return self.model(batch["pixel_values"].to(acc.device), generator=generators, **extra, **kwargs)

    def _stop_if_not_finite(self, value: torch.Tensor, what: str, where: str) -> None:
        """Raise :class:`NonFiniteLossError` (all processes agree) after saving the last good state:
        the weights and optimizer state before the update that step ``self.step + 1`` would make."""
        acc = self.accelerator
        bad = acc.reduce(torch.tensor([float(not torch.isfinite(value).all().item())], device=acc.device), "sum")
        if bad.item() == 0:
            return
        self.optimizer.zero_grad(set_to_none=True)
        saved = self.save_checkpoint({"stopped": f"non-finite {what.split(' ')[0]}"})
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} ({where}); "
            f"the last good state (after step {self.step}) is saved in {saved}"
        )

    def _reduce_mean(self, value: torch.Tensor) -> float:
        return self.accelerator.reduce(value.detach().float().reshape(1), reduction="mean").item()

    @torch.no_grad()
    def _slot_diagnostic(self, batch: dict[str, Any], micro_step: int) -> dict[str, float]:
        """Denoising loss with the right slots vs with slots shuffled across the batch (same noise)."""
        batch_size = batch["pixel_values"].shape[0]
        if batch_size < 2:
            return {}
        roll = torch.roll(torch.arange(batch_size), 1)
        right = self._micro_batch_loss(batch, micro_step).loss
        swapped = self._micro_batch_loss(batch, micro_step, slot_permutation=roll).loss
        return {"loss_right_slots": self._reduce_mean(right), "loss_shuffled_slots": self._reduce_mean(swapped)}

    def _log(self, record: dict[str, Any]) -> None:
        acc = self.accelerator
        acc.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if acc.is_main_process:
            with open(self.output_dir / "train_log.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")

    def _trim_log(self) -> None:
        """Drop log lines past the resumed step (written after the checkpoint by a killed run)."""
        path = self.output_dir / "train_log.jsonl"
        if self.accelerator.is_main_process and path.is_file():
            lines = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= self.step]
            path.write_text("".join(line + "\n" for line in lines))

    def _validate(self) -> None:
        from lsd.training.visuals import validation_grid

        acc, val = self.accelerator, self.config.validation
        if not acc.is_main_process or not val.every or val.num_images < 1:
            return
        count = min(val.num_images, len(self.dataset))
        images = torch.stack([self.dataset.get(i, 0)["pixel_values"] for i in range(count)]).to(acc.device)
        folder = self.output_dir / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        model = self.unwrapped
        model.eval()
        grid = validation_grid(
            model, images, folder / f"step-{self.step:08d}.png", val.sample_steps, self.config.train.seed
        )
        model.train()
        tracker = acc.get_tracker("tensorboard", unwrap=True)
        tracker.add_image("validation", grid, self.step, dataformats="HWC")

    def train(self, resume: str | os.PathLike | None = None) -> TrainResult:
        acc, loop = self.accelerator, self.config.train
        start = time.perf_counter()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        checkpoint = resolve_resume(resume, self.output_dir)
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
        elif self.config.init_from is not None:
            load_initial_weights(self.unwrapped, self.config.init_from, self.config.init_from_components)
        self._trim_log()
        acc.init_trackers("lsd", config={"name": self.config.name})
        accum = loop.grad_accum
        loader = iter(self._loader(self.step * accum, loop.max_steps * accum))
        bar = tqdm(total=loop.max_steps, initial=self.step, desc="train", disable=not acc.is_main_process)
        self.model.train()
        last_checkpoint = checkpoint
        while self.step < loop.max_steps:
            losses = []
            for k in range(accum):
                micro_step = self.step * accum + k
                batch = next(loader)
                sync = nullcontext() if k == accum - 1 else acc.no_sync(self.model)
                with sync:
                    out = self._micro_batch_loss(batch, micro_step)
                    self._stop_if_not_finite(out.loss, f"loss ({out.loss.item()})", f"micro-batch {k + 1}/{accum}")
                    acc.backward(out.loss / accum)
                losses.append(out.loss.detach())
            max_norm = self.config.optim.max_grad_norm
            grad_norm = acc.clip_grad_norm_(self.trainable, max_norm if max_norm is not None else math.inf)
            self._stop_if_not_finite(grad_norm, f"gradient norm ({float(grad_norm)})", "before the update")
            self.optimizer.step()
            self.lr_scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.step += 1
            bar.update(1)

            loss = self._reduce_mean(torch.stack(losses).mean())
            if self.step % loop.log_every == 0 or self.step == loop.max_steps:
                record = {"step": self.step, "loss": loss, "lr": self.lr_scheduler.get_last_lr()[-1],
                          "seconds": time.perf_counter() - start}  # fmt: skip
                record["grad_norm"] = float(grad_norm)
                if loop.diagnostic_every and self.step % loop.diagnostic_every == 0:
                    record.update(self._slot_diagnostic(batch, micro_step))
                self._log(record)
                bar.set_postfix(loss=f"{loss:.4f}")
            if self.step % self.config.checkpoint.every == 0 or self.step == loop.max_steps:
                last_checkpoint = self.save_checkpoint({"loss": loss})
            if self.config.validation.every and self.step % self.config.validation.every == 0:
                self._validate()
            if self.on_step_end is not None:
                self.on_step_end(self.step, self)
        bar.close()
        acc.end_training()
        return TrainResult(self.step, self.output_dir, last_checkpoint, time.perf_counter() - start)


def train(config: TrainConfig, resume: str | os.PathLike | None = None) -> TrainResult:
    """Train with ``config`` (see :class:`Trainer`)."""
    return Trainer(config).train(resume=resume)


__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "list_checkpoints",
    "load_initial_weights",
    "resolve_resume",
    "same_model_config",
    "train",
]
