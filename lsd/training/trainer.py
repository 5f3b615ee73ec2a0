"""The LSD training loop on accelerate (single device, multi-GPU, multi-node via ``accelerate launch``).

Per optimizer step: ``grad_accum`` micro-batches, each loss divided by ``grad_accum``, gradients
synchronised only on the last; then grad-norm clipping, AdamW (encoder group at
``lr * encoder_lr_scale``), the LR schedule. Checkpoints every ``checkpoint.every`` steps under
``<output_dir>/checkpoints/checkpoint-<step>/``: ``model/`` (``LatentSlotDiffusion`` folder),
``training_state.json`` + ``.safetensors`` (optimizer, LR scheduler, step, RNG states; no pickle,
see :mod:`lsd.training.state`), ``train_config.json`` (the resolved config),
``trainer_state.json`` and, written last, ``manifest.json`` (size and sha256 of every file); each
written to a temporary folder and renamed (:func:`lsd._atomic.atomic_dir`), the oldest beyond
``checkpoint.total_limit`` removed (never the one just written). All randomness is keyed by step (see :mod:`lsd.training.data`),
so ``resume="latest"`` reproduces an uninterrupted run bitwise on CPU.

A run folder belongs to one run (``docs/checkpoints.md``; its layout, lock, checkpoint search,
pruning and log are :mod:`lsd.runs`): the main process holds its lock for the whole run; SIGINT /
SIGTERM stop at the next step boundary (:class:`lsd.runs.Interrupted`); a fresh run into a folder
holding files is refused unless ``overwrite=True``; a resume refuses a checkpoint whose recipe differs
in a field that changes the result (:data:`RESUME_FREE_FIELDS` may change), a damaged one
(``"latest"`` falls back to the newest intact one, with a warning) and non-finite weights.
"""

from __future__ import annotations

import gc
import json
import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from lsd._atomic import atomic_dir, remove_dir, remove_stale, writing
from lsd._integrity import first_non_finite, write_manifest
from lsd.configs import load_config
from lsd.runs import (
    CHECKPOINT_PREFIX,
    LOG_NAME,
    RUN_ENTRIES,
    Interrupted,
    append_log,
    check_run_folder,
    checkpoint_path,
    hold_run,
    list_checkpoints,
    prune_checkpoints,
    refuse_old_format,
    resolve_resume,
    set_aside_later,
    stop_on_signals,
    trim_log,
    verify_checkpoint,
)
from lsd.training.config import TrainConfig
from lsd.training.state import load_training_state, rng_state, save_training_state, set_rng_state

#: Recipe fields a resumed run may change: where files go, how long it runs and its learning-rate
#: schedule, what is logged. Any other difference from the checkpoint's recipe is refused.
RESUME_FREE_FIELDS = {
    "name", "output_dir", "init_from", "data.root", "data.num_workers", "train.max_steps", "train.log_every",
    "train.diagnostic_every", "optim.lr_scheduler", "optim.warmup_steps", "checkpoint.every",
    "checkpoint.total_limit", "checkpoint.on_interrupt", "validation.every", "validation.num_images", "validation.sample_steps",
    "cache.latents", "cache.backbone", "cache.dir", "cache.hash_files", "cache.shard_size",
}  # fmt: skip


class NonFiniteLossError(RuntimeError):
    """The loss became NaN/inf; the message names the step and the saved last good checkpoint."""


@dataclass
class TrainResult:
    step: int
    output_dir: Path
    checkpoint: Path | None
    seconds: float


def recipe_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``"section.field saved -> current"`` for each result-changing field (not in
    :data:`RESUME_FREE_FIELDS`, model excluded: see :func:`same_model_config`) that differs."""
    from lsd.training.config import CacheConfig

    # sections added since a checkpoint was written count as their defaults
    saved = {"cache": CacheConfig().to_dict(), **saved}
    differences = []
    for section, value in current.items():
        if section == "model":
            continue
        pairs = value.items() if isinstance(value, dict) else [(None, value)]
        for key, new in pairs:
            name = section if key is None else f"{section}.{key}"
            old = saved.get(section) if key is None else (saved.get(section) or {}).get(key)
            if name not in RESUME_FREE_FIELDS and old != new:
                differences.append(f"{name} {old!r} -> {new!r}")
    return differences


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


class Trainer:
    """Builds data, autoencoder, model and optimizer from a :class:`TrainConfig` and trains.

    ``on_step_end(step, trainer)`` is called after every optimizer step (tests use it to
    interrupt a run at a chosen point).
    """

    def __init__(
        self,
        config: TrainConfig,
        on_step_end: Callable[[int, Trainer], None] | None = None,
        rebuild_cache: bool = False,
        progress: bool = True,
    ) -> None:
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
        with acc.main_process_first():  # the synthetic stand-in is generated once, by the main process
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
        from lsd.training.caching import cache_recipes

        cache_recipes(config, model)  # refuses what cannot be cached, before any compute
        self.images = self.dataset  # what validation shows (the cache may stand in for the pixels)
        self.rebuild_cache, self.progress = rebuild_cache, progress
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
        from lsd.training.objective import LSDObjective

        # DDP wraps the objective module (its forward computes the loss); `unwrapped` is the model.
        self.model, self.optimizer, self.lr_scheduler = acc.prepare(LSDObjective(model), optimizer, lr_scheduler)
        self.trainable = [p for g in param_groups for p in g["params"]]
        self.step = 0
        self.offloaded: list[str] = []

    def attach_cache(self) -> None:
        """Build (or open) the caches ``config.cache`` asks for from the model's CURRENT frozen
        weights, and train from them: call it after ``init_from`` or a resumed checkpoint has loaded
        the weights (:meth:`train` does; the cache key holds the weights' sha256, so a cache of other
        weights is refused as stale). The frozen parts whose outputs come from the cache then stay in
        host memory during training (they return to the device for validation images only)."""
        from lsd.cache import CachedItems
        from lsd.training.caching import cached_dataset

        acc = self.accelerator
        self.dataset = cached_dataset(
            self.config, self.images, self.unwrapped, rebuild=self.rebuild_cache,
            progress=self.progress and acc.is_local_main_process, process_index=acc.process_index,
            num_processes=acc.num_processes, wait=acc.wait_for_everyone, device=acc.device,
        )  # fmt: skip
        if isinstance(self.dataset, CachedItems):
            pairs = (("vae", self.dataset.posterior), ("backbone", self.dataset.features))
            self.offloaded = [name for name, reader in pairs if reader is not None]
        for name in self.offloaded:
            getattr(self.unwrapped, name).to("cpu")

    def load_start_weights(self) -> None:
        """``init_from``'s weights, when the config names them (a fresh run's start)."""
        if self.config.init_from is not None:
            load_initial_weights(self.unwrapped, self.config.init_from, self.config.init_from_components)

    # -- state ---------------------------------------------------------------------------------
    @property
    def unwrapped(self):
        return self.accelerator.unwrap_model(self.model).model

    def _checkpoint_path(self, step: int) -> Path:
        return checkpoint_path(self.output_dir, step)

    def save_checkpoint(self, extra: dict[str, Any] | None = None) -> Path:
        """Write ``checkpoint-<step>`` atomically (main process; manifest last) and prune old ones
        (never this one: :func:`lsd.runs.prune_checkpoints`). Replacing a checkpoint of the same
        step renames the old one aside until the new one is in. A write failing for want of room
        or rights raises :class:`lsd._atomic.WriteError` naming the path; the earlier checkpoints
        stay as they were."""
        acc = self.accelerator
        target = self._checkpoint_path(self.step)
        if acc.is_main_process:
            remove_stale(target.parent)  # left by a killed run
            with atomic_dir(target) as tmp:
                self.unwrapped.save_pretrained(tmp / "model")
                state = {
                    "optimizer": self.optimizer.state_dict(),
                    "lr_scheduler": self.lr_scheduler.state_dict(),
                    "step": self.step,
                    "rng": rng_state(),
                }
                save_training_state(tmp, state)
                record = self.config.to_dict()
                record["model"] = load_config(self.config.model)  # self-contained: resumable without the file
                (tmp / "train_config.json").write_text(json.dumps(record, indent=2) + "\n")
                trainer = {"step": self.step, "micro_step": self.step * self.config.train.grad_accum, **(extra or {})}
                (tmp / "trainer_state.json").write_text(json.dumps(trainer, indent=2) + "\n")
                write_manifest(tmp)
            prune_checkpoints(self.output_dir, self.config.checkpoint.total_limit, keep=target)
        acc.wait_for_everyone()
        return target

    def load_checkpoint(self, path: Path) -> None:
        """Restore model weights, optimizer, LR scheduler, step and RNG states from ``path``
        (json + safetensors only). Refuses another model config, another recipe (naming each
        differing field) and non-finite weights (naming the tensor)."""
        from lsd.models.lsd import LatentSlotDiffusion

        refuse_old_format(path)
        config_path = path / "train_config.json"
        try:
            saved = json.loads(config_path.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{config_path}: cannot read the checkpoint's training config ({err})") from err
        if not same_model_config(saved.get("model"), self.config.model):
            raise ValueError(f"{path} was trained with a different model config than this run's `model`")
        differences = recipe_differences(saved, self.config.to_dict())
        if differences:
            raise ValueError(
                f"{path} was trained with another recipe: {', '.join(differences)}; resume with the checkpoint's "
                "values, or start a new run from its weights with --set init_from=" + str(path)
            )
        loaded = LatentSlotDiffusion.from_pretrained(path / "model")  # verifies its manifest and finiteness
        state = load_training_state(path)
        self.unwrapped.load_state_dict(loaded.state_dict())
        self.optimizer.load_state_dict(state["optimizer"])
        self.lr_scheduler.load_state_dict(state["lr_scheduler"])
        set_rng_state(state["rng"])
        self.step = int(state["step"])

    def _release_distributed(self) -> None:
        """Drop the DDP wrapper (and its gradient reducer) while every process is still here, before
        ``end_training`` destroys the process group: a reducer freed after that, when the run's
        :class:`Trainer` goes, could hang in gloo's teardown once the other processes had exited.
        ``self.model`` stays the (unwrapped) objective, so :attr:`unwrapped` keeps working."""
        acc = self.accelerator
        if acc.num_processes == 1:
            return
        acc.wait_for_everyone()
        self.model = acc.unwrap_model(self.model)
        acc.free_memory()  # accelerate's own references to the prepared (wrapped) objects
        gc.collect()
        acc.wait_for_everyone()

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
        extra = {
            name: batch[name].to(acc.device)
            for name in ("backbone_pixel_values", "posterior", "backbone_features")
            if name in batch
        }
        pixels = batch["pixel_values"].to(acc.device) if "pixel_values" in batch else None
        return self.model(pixels, generator=generators, **extra, **kwargs)

    def _stop_if_not_finite(self, value: torch.Tensor, what: str, where: str) -> None:
        """Raise :class:`NonFiniteLossError` (all processes agree) naming the last finite state: the
        weights and optimizer state before the update that step ``self.step + 1`` would make. An
        existing checkpoint of ``self.step`` is kept untouched; otherwise that state is saved,
        unless the weights themselves are not finite (then the newest earlier checkpoint is named)."""
        acc = self.accelerator
        bad = acc.reduce(torch.tensor([float(not torch.isfinite(value).all().item())], device=acc.device), "sum")
        if bad.item() == 0:
            return
        self.optimizer.zero_grad(set_to_none=True)
        existing = self._checkpoint_path(self.step)
        poisoned = first_non_finite(self.unwrapped.state_dict().items())
        if (existing / "manifest.json").is_file():
            saved, note = existing, f"after step {self.step}"
        elif poisoned is None:
            saved, note = (
                self.save_checkpoint({"stopped": f"non-finite {what.split(' ')[0]}"}),
                f"after step {self.step}",
            )
        else:
            earlier = list_checkpoints(self.output_dir)
            saved = earlier[-1] if earlier else None
            note = f"the weights hold NaN/inf ({poisoned}), so none was saved; the newest checkpoint is"
        raise NonFiniteLossError(
            f"non-finite {what} at step {self.step + 1} ({where}); the last good state ({note}) is {saved}"
        )

    def _reduce_mean(self, value: torch.Tensor) -> float:
        return self.accelerator.reduce(value.detach().float().reshape(1), reduction="mean").item()

    @torch.no_grad()
    def _slot_diagnostic(self, batch: dict[str, Any], micro_step: int) -> dict[str, float]:
        """Denoising loss with the right slots vs with slots shuffled across the batch (same noise)."""
        batch_size = len(batch["index"])
        if batch_size < 2:
            return {}
        roll = torch.roll(torch.arange(batch_size), 1)
        right = self._micro_batch_loss(batch, micro_step).loss
        swapped = self._micro_batch_loss(batch, micro_step, slot_permutation=roll).loss
        return {"loss_right_slots": self._reduce_mean(right), "loss_shuffled_slots": self._reduce_mean(swapped)}

    def _log(self, record: dict[str, Any]) -> None:
        acc = self.accelerator
        with writing(self.output_dir / "lsd"):  # the TensorBoard events
            acc.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if acc.is_main_process:
            append_log(self.output_dir / LOG_NAME, record)

    def _trim_log(self) -> None:
        """Drop log lines past the resumed step (written after the checkpoint by a killed run) and
        a cut-off last line (:func:`lsd.runs.trim_log`)."""
        if self.accelerator.is_main_process:
            trim_log(self.output_dir / LOG_NAME, self.step)

    def _stop(self, signum: int, last_checkpoint: Path | None) -> None:
        """Stop at a safe point after a signal: save this step first when ``checkpoint.on_interrupt``
        asks for it (and it is not saved yet), then raise :class:`Interrupted` naming the checkpoint."""
        if self.step and last_checkpoint != self._checkpoint_path(self.step) and self.config.checkpoint.on_interrupt:
            last_checkpoint = self.save_checkpoint({"stopped": signal.Signals(signum).name})
        if last_checkpoint is None and self.accelerator.is_main_process:
            found = list_checkpoints(self.output_dir)
            last_checkpoint = found[-1] if found else None
        self.accelerator.end_training()
        raise Interrupted(signum, self.step, last_checkpoint)

    def _validate(self) -> None:
        from lsd.training.visuals import validation_grid

        acc, val = self.accelerator, self.config.validation
        if not acc.is_main_process or not val.every or val.num_images < 1:
            return
        count = min(val.num_images, len(self.images))
        images = torch.stack([self.images.get(i, 0)["pixel_values"] for i in range(count)]).to(acc.device)
        folder = self.output_dir / "validation"
        folder.mkdir(parents=True, exist_ok=True)
        model = self.unwrapped
        model.eval()
        for name in self.offloaded:
            getattr(model, name).to(acc.device)
        grid = validation_grid(
            model, images, folder / f"step-{self.step:08d}.png", val.sample_steps, self.config.train.seed
        )
        for name in self.offloaded:
            getattr(model, name).to("cpu")
        model.train()
        tracker = acc.get_tracker("tensorboard", unwrap=True)
        tracker.add_image("validation", grid, self.step, dataformats="HWC")

    def train(
        self, resume: str | os.PathLike | None = None, overwrite: bool = False, progress: bool = True
    ) -> TrainResult:
        """Train to ``train.max_steps``. ``resume``: ``None`` (a fresh run: the output folder must
        hold no files unless ``overwrite``, which removes the earlier run's), ``"latest"`` or a
        checkpoint folder (see :func:`resolve_resume`; later checkpoints of this run folder are
        set aside, :func:`lsd.runs.set_aside_later`). ``progress=False`` hides the main process's
        tqdm bar (its postfix: the last step's loss), as the constructor's ``progress`` does.

        The main process holds the run folder's lock throughout (:func:`lsd.runs.hold_run`).
        SIGINT / SIGTERM stop the run after the step in progress (and its checkpoint, or a
        checkpoint of that step when ``checkpoint.on_interrupt``): :class:`lsd.runs.Interrupted`
        names the checkpoint to resume."""
        self.progress = self.progress and progress
        lock = hold_run(self.output_dir) if self.accelerator.is_main_process else nullcontext()
        with lock, stop_on_signals() as stop, ExitStack() as cleanup:
            return self._train(resume, overwrite, stop, cleanup)

    def _train(self, resume: str | os.PathLike | None, overwrite: bool, stop, cleanup: ExitStack) -> TrainResult:
        acc, loop = self.accelerator, self.config.train
        start = time.perf_counter()
        replaced = check_run_folder(self.output_dir, resume, overwrite)
        checkpoint = resolve_resume(resume, self.output_dir)
        acc.wait_for_everyone()  # every process has checked the folder before any writes to it
        if acc.is_main_process:
            for entry in replaced:
                if entry.is_dir():
                    remove_dir(entry)
                else:
                    entry.unlink()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        if checkpoint is not None:
            self.load_checkpoint(checkpoint)
            if acc.is_main_process:
                set_aside_later(self.output_dir, self.step)
            acc.wait_for_everyone()
        else:
            self.load_start_weights()
        self.attach_cache()  # from the weights just loaded
        self._trim_log()
        # TensorBoard: drop events a killed run wrote past the resumed step
        tracker_kwargs = {"tensorboard": {"purge_step": self.step + 1}} if self.step else {}
        acc.init_trackers("lsd", config={"name": self.config.name}, init_kwargs=tracker_kwargs)
        accum = loop.grad_accum
        loader = iter(self._loader(self.step * accum, loop.max_steps * accum))
        # closed by train()'s exit stack, also on an error: before the message, so it does not print after it
        bar = cleanup.enter_context(
            tqdm(
                total=loop.max_steps,
                initial=self.step,
                desc="train",
                disable=not (acc.is_main_process and self.progress),
            )  # fmt: skip
        )
        self.model.train()
        last_checkpoint = checkpoint
        while self.step < loop.max_steps:
            if stop:
                self._stop(stop.signum, last_checkpoint)
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
            bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # this step's loss (logged every log_every)
            if self.step % loop.log_every == 0 or self.step == loop.max_steps:
                record = {"step": self.step, "loss": loss, "lr": self.lr_scheduler.get_last_lr()[-1],
                          "seconds": time.perf_counter() - start}  # fmt: skip
                record["grad_norm"] = float(grad_norm)
                if loop.diagnostic_every and self.step % loop.diagnostic_every == 0:
                    record.update(self._slot_diagnostic(batch, micro_step))
                self._log(record)
            if self.step % self.config.checkpoint.every == 0 or self.step == loop.max_steps:
                last_checkpoint = self.save_checkpoint({"loss": loss})
            if self.config.validation.every and self.step % self.config.validation.every == 0:
                self._validate()
            if self.on_step_end is not None:
                self.on_step_end(self.step, self)
        bar.close()
        if stop:  # the signal came during the last step: the run is complete, say so all the same
            self._stop(stop.signum, last_checkpoint)
        self._release_distributed()
        acc.end_training()
        return TrainResult(self.step, self.output_dir, last_checkpoint, time.perf_counter() - start)


def train(
    config: TrainConfig,
    resume: str | os.PathLike | None = None,
    overwrite: bool = False,
    rebuild_cache: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train with ``config`` (see :class:`Trainer`); the output folder and ``resume`` are checked
    before the data, autoencoder and cache stages run, under the run folder's lock. ``rebuild_cache``:
    rebuild a stale cache (``config.cache``) instead of refusing it; ``progress``: show progress bars."""
    lock = hold_run(config.output_dir) if int(os.environ.get("RANK", "0")) == 0 else nullcontext()
    with lock, stop_on_signals():  # the lock before any check; a signal during set-up stops at the loop's start
        check_run_folder(config.output_dir, resume, overwrite)
        resolve_resume(resume, config.output_dir)
        _check_slot_attention(config.model)
        trainer = Trainer(config, rebuild_cache=rebuild_cache, progress=progress)
        return trainer.train(resume=resume, overwrite=overwrite)


def _check_slot_attention(model: str | dict) -> None:
    """Build the (small) slot-attention component of the model config once, so that a bad value
    there (``num_slots=0``) is named before the data and autoencoder stages run."""
    from lsd.configs import build_component

    spec = load_config(model).get("slot_attention")
    if isinstance(spec, dict) and "pretrained" not in spec:
        build_component(spec, "slot_attention")


__all__ = [
    "CHECKPOINT_PREFIX",
    "RUN_ENTRIES",
    "Interrupted",
    "NonFiniteLossError",
    "RESUME_FREE_FIELDS",
    "TrainResult",
    "Trainer",
    "check_run_folder",
    "list_checkpoints",
    "recipe_differences",
    "load_initial_weights",
    "resolve_resume",
    "same_model_config",
    "train",
    "verify_checkpoint",
]
