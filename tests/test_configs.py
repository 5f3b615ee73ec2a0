import json

import pytest
import torch

from lsd.configs import available_configs, build_component, build_model, load_config
from lsd.models.pretrained import PretrainedNotFound
from lsd.training.objective import training_loss


def count(module):
    return sum(p.numel() for p in module.parameters())


def slot_attention_params(C, D, mlp, out):
    """Counted by hand from the layer list in docs/model.md."""
    linear = lambda i, o, bias=True: i * o + (o if bias else 0)  # noqa: E731
    return (
        linear(4, C)  # pos.projection (1x1 conv)
        + 2 * C + 2 * linear(C, C)  # in_layer_norm, in_mlp
        + 2 * D  # slot_mu, slot_log_sigma
        + 2 * C + 2 * D + 2 * D  # norm_inputs, norm_slots, norm_mlp
        + linear(D, D, False) + 2 * linear(C, D, False)  # project_q, project_k, project_v
        + 2 * 3 * D * D + 2 * 3 * D  # GRUCell
        + linear(D, mlp) + linear(mlp, D)  # mlp
        + 2 * D + linear(D, out)  # out_layer_norm, out_linear
    )  # fmt: skip


def test_shipped_configs():
    assert {"movi-e", "coco", "cpu", "standin", "tiny"} <= set(available_configs())


def test_movi_e_builds_with_the_spec_parameter_counts():
    config = load_config("movi-e")
    with torch.device("meta"):
        unet = build_component(config["unet"], "unet")
        slot_attention = build_component(config["slot_attention"], "slot_attention")
        backbone = build_component(config["backbone"], "backbone")
    assert 300e6 < count(unet) < 310e6  # spec: "about 305 M parameters"
    assert count(slot_attention) == slot_attention_params(C=192, D=192, mlp=192, out=192)
    assert backbone.feature_channels == 192 and backbone.feature_resolution == 64
    assert backbone.downscale_cnn.stride == (4, 4)
    blocks = unet.config
    assert blocks.block_out_channels == [192, 384, 768, 768] and blocks.cross_attention_dim == 192


def test_coco_slot_attention_matches_the_spec():
    config = load_config("coco")
    with torch.device("meta"):
        slot_attention = build_component(config["slot_attention"], "slot_attention")
    assert count(slot_attention) == slot_attention_params(C=768, D=768, mlp=768, out=1024)
    assert config["frozen"] == ["backbone", "unet"]


@pytest.mark.parametrize("name", ["movi-e", "cpu", "standin"])
def test_denoiser_attention_heads_are_at_least_as_wide_as_the_releases(name):
    # diffusers' UNet2DConditionModel reads `attention_head_dim` as the NUMBER of heads: the release's
    # 24 on 192/384/768 channels gives head widths 8/16/32. A small UNet copying a "head dim" of 32
    # onto 32 channels gets 32 heads of width 1, each ranking the slots by a single scalar.
    from diffusers.models.attention_processor import Attention

    with torch.device("meta"):
        unet = build_component(load_config(name)["unet"], "unet")
    widths = {m.inner_dim // m.heads for m in unet.modules() if isinstance(m, Attention)}
    assert widths and min(widths) >= 8, widths


@pytest.mark.parametrize("name", ["tiny", "cpu", "standin"])
def test_config_builds_and_trains_one_step(name):
    torch.manual_seed(0)
    model = build_model(name)
    res = load_config(name)["resolution"]
    images = torch.rand(2, 3, res, res) * 2 - 1
    optimizer = torch.optim.AdamW([p for g in model.parameter_groups().values() for p in g], lr=1e-3)
    before = model.slot_attention.slot_mu.detach().clone()
    loss = training_loss(model, images, generator=torch.Generator().manual_seed(0)).loss
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert not torch.equal(before, model.slot_attention.slot_mu)


@pytest.mark.slow
def test_movi_e_trains_one_step_at_256px():
    torch.manual_seed(0)
    # The SD 2.1 VAE is not on this machine; a lossless x8 space-to-depth latent has its latent size
    # (32x32) but 192 channels, so the denoiser's in/out channels are widened for this smoke test.
    from lsd.models.autoencoder import PixelUnshuffleAutoencoder

    config = load_config("movi-e")
    config["unet"].update(in_channels=192, out_channels=192)
    model = build_model(config, vae=PixelUnshuffleAutoencoder(factor=8))
    loss = training_loss(model, torch.rand(1, 3, 256, 256) * 2 - 1).loss
    loss.backward()
    assert torch.isfinite(loss)
    assert model.encode(torch.zeros(1, 3, 256, 256)).attn.shape == (1, 1, 64 * 64, 24)


def test_pretrained_entries_fail_fast_without_local_weights(tmp_path, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PretrainedNotFound, match="facebook/dinov2-base"):
        build_model("coco")
    with pytest.raises(PretrainedNotFound, match="stabilityai/stable-diffusion-2-1"):
        build_model("movi-e")


def test_bad_configs_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="shipped configs"):
        load_config("movi-z")
    config = load_config("tiny")
    with pytest.raises(ValueError, match="unknown field.*'learning_rate'"):
        load_config({**config, "learning_rate": 1e-4})
    bad_unet = json.loads(json.dumps(config))
    bad_unet["unet"]["pos_tpye"] = "sincos"
    with pytest.raises(ValueError, match="'unet'.*pos_tpye"):
        build_model(bad_unet)
    bad_class = json.loads(json.dumps(config))
    bad_class["backbone"]["_class_name"] = "ResNet50"
    with pytest.raises(ValueError, match="'backbone'.*ResNet50"):
        build_model(bad_class)
    bad_scheduler = json.loads(json.dumps(config))
    bad_scheduler["scheduler"]["beta_shedule"] = "linear"
    with pytest.raises(ValueError, match="'scheduler'.*beta_shedule"):
        build_model(bad_scheduler)
    bad_objective = json.loads(json.dumps(config))
    bad_objective["objective"]["snr"] = 5
    with pytest.raises(ValueError, match="'objective'.*snr"):
        build_model(bad_objective)
    missing = {k: v for k, v in config.items() if k != "unet"}
    with pytest.raises(ValueError, match="missing component 'unet'"):
        load_config(missing)
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="broken.json: invalid JSON"):
        load_config(path)


def test_the_one_json_config_lookup(tmp_path):
    from lsd.configs import read_config_json

    (tmp_path / "mine.json").write_text('{"a": [1, 2]}')
    (tmp_path / "broken.json").write_text("{")
    values, source = read_config_json("mine", tmp_path, "thing", "['mine']")
    assert values == {"a": [1, 2]} and source == str(tmp_path / "mine.json")
    assert read_config_json(tmp_path / "mine.json", tmp_path / "elsewhere", "thing", "[]")[0] == values
    original = {"a": [1]}
    copied, source = read_config_json(original, tmp_path, "thing", "[]")
    copied["a"].append(2)
    assert original == {"a": [1]} and source == "<dict>"
    with pytest.raises(FileNotFoundError, match=r"no thing 'other': not a file and not one of \['mine'\]"):
        read_config_json("other", tmp_path, "thing", "['mine']")
    with pytest.raises(ValueError, match=r"broken\.json: invalid JSON"):
        read_config_json("broken", tmp_path, "thing", "[]")


def test_the_component_registry_names_every_class_a_config_may_use():
    from lsd.models.registry import component_class, component_classes
    from lsd.models.slot_attention import SlotAttention

    assert component_class("SlotAttention", "x") is SlotAttention
    assert {"CNNBackbone", "DINOv2Backbone", "SlotConditionedUNet", "AutoencoderKL"} <= set(component_classes())
    with pytest.raises(ValueError, match=r"config field 'unet': _class_name 'Nope' is not one of"):
        component_class("Nope", "config field 'unet'")
