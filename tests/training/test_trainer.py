import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lsd.configs import load_config
from lsd.training.trainer import NonFiniteLossError, Trainer, list_checkpoints


def weights(trainer):
    return {k: v.detach().clone() for k, v in trainer.unwrapped.state_dict().items()}


def assert_bitwise_equal(a, b):
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert different == [], f"{len(different)} tensors differ, e.g. {different[:3]}"


class Interrupt(Exception):
    pass


def interrupt_at(step_to_stop):
    def hook(step, trainer):
        if step == step_to_stop:
            raise Interrupt

    return hook


@pytest.mark.parametrize("stop_after", [1, 2, 3], ids=["before-first-checkpoint", "at-checkpoint", "between"])
def test_killed_and_resumed_run_equals_uninterrupted_run_bitwise(make_config, tmp_path, stop_after):
    reference = Trainer(make_config(output_dir=str(tmp_path / "ref"), train={"grad_accum": 2}))
    reference.train()
    expected = weights(reference)

    config = make_config(output_dir=str(tmp_path / "resumed"), train={"grad_accum": 2})
    with pytest.raises(Interrupt):
        Trainer(config, on_step_end=interrupt_at(stop_after)).train()
    resumed = Trainer(config)
    resumed.train(resume="latest")
    assert resumed.step == 4
    assert_bitwise_equal(weights(resumed), expected)
    # optimizer state too
    a, b = reference.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(a[i]["exp_avg_sq"], b[i]["exp_avg_sq"]) for i in a)
    # the log holds each step once, as the uninterrupted run's
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "train_log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_checkpoints_are_complete_limited_and_carry_the_resolved_config(make_config, tmp_path):
    config = make_config(checkpoint={"every": 1, "total_limit": 2})
    Trainer(config).train()
    found = list_checkpoints(config.output_dir)
    assert [p.name for p in found] == ["checkpoint-00000003", "checkpoint-00000004"]
    for ckpt in found:
        assert {p.name for p in ckpt.iterdir()} == {
            "model",
            "training_state.json",
            "training_state.safetensors",
            "train_config.json",
            "trainer_state.json",
            "manifest.json",
        }
        # the whole training config, with the model config resolved (resumable without its file)
        assert json.loads((ckpt / "train_config.json").read_text()) == {
            **config.to_dict(),
            "model": load_config(config.model),
        }
    assert not [p for p in (Path(config.output_dir) / "checkpoints").iterdir() if p.name.startswith(".")]
    import lsd

    model = lsd.LatentSlotDiffusion.from_pretrained(found[-1] / "model")  # a usable diffusers-layout model
    assert model.encode(torch.zeros(1, 3, 32, 32)).slots.shape == (1, 4, 16)


def test_crash_while_writing_a_checkpoint_leaves_the_previous_one_usable(make_config, monkeypatch):
    import lsd.training.trainer as trainer_module

    config = make_config()
    trainer = Trainer(config, on_step_end=None)
    original = trainer_module.save_training_state
    calls = {"n": 0}

    def flaky_save(folder, state):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint (step 4) dies half-written
            raise OSError("disk full")
        return original(folder, state)

    monkeypatch.setattr(trainer_module, "save_training_state", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        trainer.train()
    monkeypatch.setattr(trainer_module, "save_training_state", original)
    assert [p.name for p in list_checkpoints(config.output_dir)] == ["checkpoint-00000002"]
    assert not [p for p in (Path(config.output_dir) / "checkpoints").iterdir() if p.name.startswith(".")]
    resumed = Trainer(config)
    resumed.train(resume="latest")
    assert resumed.step == 4


def first_step_gradients(trainer, monkeypatch):
    """The gradients the optimizer sees at its first step (Adam's first update is ~lr * sign(g), which
    would turn float-reordering noise on near-zero gradients into full-size differences)."""
    grads = {}
    original = trainer.optimizer.step

    def capture(*args, **kwargs):
        if not grads:
            grads.update(
                {n: p.grad.detach().clone() for n, p in trainer.unwrapped.named_parameters() if p.grad is not None}
            )
        return original(*args, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", capture)
    trainer.train()
    return grads


def test_gradient_accumulation_equals_the_larger_batch(make_config, tmp_path, monkeypatch):
    big = Trainer(
        make_config(output_dir=str(tmp_path / "big"), train={"batch_size": 4, "grad_accum": 1, "max_steps": 1})
    )
    accumulated = Trainer(
        make_config(output_dir=str(tmp_path / "acc"), train={"batch_size": 2, "grad_accum": 2, "max_steps": 1})
    )
    a, b = first_step_gradients(big, monkeypatch), first_step_gradients(accumulated, monkeypatch)
    assert a.keys() == b.keys() and len(a) > 0
    scale = max(g.abs().max().item() for g in a.values())
    for key in a:  # mean of two half-batch means (each / 2) == the full-batch mean, up to float reordering
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6 * scale, msg=key)


def test_optimizer_steps_exactly_every_n_micro_batches(make_config, monkeypatch):
    trainer = Trainer(make_config(train={"batch_size": 2, "grad_accum": 3, "max_steps": 2, "diagnostic_every": 0}))
    steps, micro = [], []
    original_step = trainer.optimizer.step
    original_loss = trainer._micro_batch_loss

    def counting_step(*args, **kwargs):
        steps.append(len(micro))
        return original_step(*args, **kwargs)

    def counting_loss(batch, micro_step, **kwargs):
        if not kwargs:
            micro.append(micro_step)
        return original_loss(batch, micro_step, **kwargs)

    monkeypatch.setattr(trainer.optimizer, "step", counting_step)
    monkeypatch.setattr(trainer, "_micro_batch_loss", counting_loss)
    trainer.train()
    assert steps == [3, 6]
    assert micro == [0, 1, 2, 3, 4, 5]


def test_encoder_group_uses_the_scaled_learning_rate(make_config):
    trainer = Trainer(make_config())
    groups = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert groups == {"encoder": pytest.approx(2e-3), "decoder": pytest.approx(1e-3)}


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint_untouched(make_config, monkeypatch):
    trainer = Trainer(make_config(train={"max_steps": 6}))
    dataset = trainer.dataset
    original = dataset.get

    def poisoned(index, epoch):
        item = original(index, epoch)
        if trainer.step == 2:  # images of step 3 are corrupt
            item["pixel_values"] = item["pixel_values"] * float("nan")
        return item

    monkeypatch.setattr(dataset, "get", poisoned)
    snapshot, files = {}, {}

    def remember(step, t):
        if step == 2:
            snapshot.update(weights(t))
            folder = t.output_dir / "checkpoints" / "checkpoint-00000002"
            files.update({p: p.read_bytes() for p in folder.rglob("*") if p.is_file()})

    trainer.on_step_end = remember
    with pytest.raises(
        NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 .*after step 2.*checkpoint-00000002"
    ):
        trainer.train()
    saved = trainer.output_dir / "checkpoints" / "checkpoint-00000002"
    import lsd

    state = lsd.LatentSlotDiffusion.from_pretrained(saved / "model").state_dict()
    assert all(torch.isfinite(v).all() for v in state.values())
    assert_bitwise_equal(state, snapshot)
    # the regular checkpoint of step 2 is the last good state: kept byte for byte, not rewritten
    assert files and {p: p.read_bytes() for p in saved.rglob("*") if p.is_file()} == files


def test_bad_inputs_are_clear_errors(make_config, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Trainer(make_config(data={"kind": "glob", "root": str(tmp_path / "missing")}))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no images match"):
        Trainer(make_config(data={"kind": "glob", "root": str(empty)}))
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(4):
        (broken / f"{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    trainer = Trainer(make_config(data={"kind": "glob", "root": str(broken)}))
    with pytest.raises(ValueError, match=r"cannot read image .*\d\.png"):
        trainer.train()
    few = tmp_path / "few"
    few.mkdir()
    from PIL import Image

    Image.new("RGB", (32, 32)).save(few / "only.png")
    with pytest.raises(ValueError, match="fewer than one global batch"):
        Trainer(make_config(data={"kind": "glob", "root": str(few)}))


def test_multi_process_first_update_equals_single_process(make_config, tmp_path):
    """Two CPU processes (DDP over gloo) with batch 2 each == 1 process with batch 4.

    Adam's first update is lr * g / (|g| + eps): with the default tiny eps it is ~lr * sign(g), which turns
    the different float summation order of DDP's all-reduce into full-size differences on near-zero
    gradients. eps = 1 makes the update linear in g (~lr * g), so equal gradients mean equal weights."""
    optim = {"eps": 1.0, "lr": 1e-2}
    single = Trainer(
        make_config(output_dir=str(tmp_path / "single"), optim=optim, train={"batch_size": 4, "max_steps": 1})
    )
    single.train()
    config = make_config(output_dir=str(tmp_path / "multi"), optim=optim, train={"batch_size": 2, "max_steps": 1})
    config_path = tmp_path / "multi.json"
    config_path.write_text(json.dumps(config.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # `accelerate launch --cpu --num_processes 2` starts ONE process (measured: accelerate 1.15); CPU DDP is
    # started with torchrun, whose environment the Accelerator turns into MULTI_CPU with gloo.
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "lsd", "train", "--config", str(config_path)]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import lsd

    multi = lsd.LatentSlotDiffusion.from_pretrained(
        tmp_path / "multi" / "checkpoints" / "checkpoint-00000001" / "model"
    )
    expected = weights(single)
    got = multi.state_dict()
    logs = [json.loads(line) for line in (tmp_path / "multi" / "train_log.jsonl").read_text().splitlines()]
    single_log = json.loads((tmp_path / "single" / "train_log.jsonl").read_text().splitlines()[0])
    assert logs[0]["loss"] == pytest.approx(single_log["loss"], rel=1e-6)  # same images, same noise
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-7, msg=lambda m, key=key: f"{key}: {m}")


def test_resume_accepts_the_same_model_config_under_another_name_and_rejects_a_different_one(tmp_path):
    from lsd.configs import load_config
    from lsd.training.trainer import same_model_config

    renamed = {**load_config("tiny"), "name": "tiny-copy", "description": "same model, new name"}
    path = tmp_path / "renamed.json"
    path.write_text(json.dumps(renamed))
    assert same_model_config("tiny", "tiny")
    assert same_model_config(str(path), "tiny")  # a saved path, resolved
    assert same_model_config(renamed, "tiny")  # a saved dict (what checkpoints now store)
    changed = json.loads(json.dumps(renamed))
    changed["slot_attention"]["num_slots"] += 1
    assert not same_model_config(changed, "tiny")
    assert not same_model_config(str(tmp_path / "gone.json"), "tiny")  # unresolvable: not the same
    assert not same_model_config(None, "tiny")


def _trained_tiny_model(make_config, tmp_path):
    """A 4-step tiny run; returns its last checkpoint folder."""
    Trainer(make_config(output_dir=str(tmp_path / "source"))).train()
    return list_checkpoints(tmp_path / "source")[-1]


def test_init_from_starts_a_fresh_run_from_trained_weights_with_another_slot_count(make_config, tmp_path):
    from lsd.models.lsd import LatentSlotDiffusion

    source = _trained_tiny_model(make_config, tmp_path)
    expected = LatentSlotDiffusion.from_pretrained(source / "model").state_dict()
    tiny5 = load_config("tiny")
    tiny5["slot_attention"]["num_slots"] = 5  # Gaussian slot init: no per-slot weights
    config = make_config(
        model=tiny5,
        init_from=str(source),
        output_dir=str(tmp_path / "tuned"),
        optim={"lr": 1e-12},
        train={"max_steps": 1},
    )
    fresh = make_config(model=tiny5, output_dir=str(tmp_path / "fresh"), optim={"lr": 1e-12}, train={"max_steps": 1})
    tuned, scratch = Trainer(config), Trainer(fresh)
    tuned.train()
    scratch.train()
    got, random_init = weights(tuned), weights(scratch)
    assert got.keys() == expected.keys()
    for key, value in expected.items():  # one step at lr 1e-12 moves nothing measurable
        torch.testing.assert_close(got[key], value, rtol=0, atol=1e-8, msg=lambda m, key=key: f"{key}: {m}")
    assert any(not torch.allclose(random_init[k], expected[k], atol=1e-3) for k in expected)
    assert tuned.step == 1  # a new schedule from step 0, not the source's step 4
    assert tuned.unwrapped.slot_attention.config.num_slots == 5


def test_init_from_is_not_reapplied_when_a_run_resumes(make_config, tmp_path):
    source = _trained_tiny_model(make_config, tmp_path)
    reference = Trainer(make_config(init_from=str(source), output_dir=str(tmp_path / "ref")))
    reference.train()
    config = make_config(init_from=str(source), output_dir=str(tmp_path / "resumed"))
    with pytest.raises(Interrupt):
        Trainer(config, on_step_end=interrupt_at(3)).train()
    resumed = Trainer(config)
    resumed.train(resume="latest")
    assert_bitwise_equal(weights(resumed), weights(reference))


def test_init_from_names_what_does_not_fit(make_config, tmp_path):
    from lsd.training.trainer import load_initial_weights

    source = _trained_tiny_model(make_config, tmp_path)
    wider = load_config("tiny")
    wider["slot_attention"]["slot_size"] = 48
    trainer = Trainer(make_config(model=wider, init_from=str(source), output_dir=str(tmp_path / "wider")))
    with pytest.raises(ValueError, match=r"init_from .*other shape: .*slot_attention\."):
        trainer.train()
    with pytest.raises(FileNotFoundError, match="init_from .*gone.*lsd_config.json"):
        load_initial_weights(trainer.unwrapped, tmp_path / "gone")


def test_init_from_components_loads_a_trained_encoder_under_a_new_frozen_decoder(make_config, tmp_path):
    """A new decoder (other UNet widths) on the source's backbone + slot attention; with the model's
    ``frozen`` field those stay bitwise at the source's values through training, weight decay included."""
    from lsd.models.lsd import LatentSlotDiffusion

    source = _trained_tiny_model(make_config, tmp_path)
    expected = LatentSlotDiffusion.from_pretrained(source / "model").state_dict()
    new_decoder = load_config("tiny")
    new_decoder["unet"]["block_out_channels"] = [8, 16]  # does not fit the source's UNet
    new_decoder["frozen"] = ["backbone", "slot_attention"]
    config = make_config(
        model=new_decoder,
        init_from=str(source),
        init_from_components=["backbone", "slot_attention"],
        output_dir=str(tmp_path / "decoder"),
        optim={"lr": 1e-2, "weight_decay": 0.5},
        train={"max_steps": 3},
    )
    trainer = Trainer(config)
    unet_before = {k: v.clone() for k, v in trainer.unwrapped.unet.state_dict().items()}
    trainer.train()
    got = weights(trainer)
    encoder = [k for k in expected if k.startswith(("backbone.", "slot_attention."))]
    assert encoder and all(torch.equal(got[k], expected[k]) for k in encoder)
    unet_after = trainer.unwrapped.unet.state_dict()
    assert any(not torch.equal(unet_before[k], unet_after[k]) for k in unet_before)  # the decoder trained
    # without the component list, the unet's other shape is an error that names it
    with pytest.raises(ValueError, match=r"other shape: unet\."):
        Trainer(make_config(model=new_decoder, init_from=str(source), output_dir=str(tmp_path / "all"))).train()


def test_init_from_components_is_checked(make_config):
    with pytest.raises(ValueError, match=r"init_from_components=\['backbone'\] needs init_from"):
        make_config(init_from_components=["backbone"])
    with pytest.raises(
        ValueError, match="init_from_components.0='decoder': Input should be 'backbone', 'slot_attention'"
    ):
        make_config(init_from="x", init_from_components=["decoder"])
    with pytest.raises(ValueError, match="init_from_components=\\[\\]: List should have at least 1 item"):
        make_config(init_from="x", init_from_components=[])


def test_the_bar_follows_progress_and_shows_every_steps_loss(make_config, tmp_path, capfd):
    """``progress=False`` (``--no-progress``) silences the trainer's bar; with it, the loss shown
    is the last step's, not the last logged one's."""
    Trainer(make_config(output_dir=str(tmp_path / "quiet"))).train(progress=False)
    assert "train" not in capfd.readouterr().err
    config = make_config(output_dir=str(tmp_path / "shown"), train={"log_every": 100})  # no record logged
    trainer = Trainer(config)
    trainer.train()
    err = capfd.readouterr().err
    assert "train" in err and "loss=" in err
