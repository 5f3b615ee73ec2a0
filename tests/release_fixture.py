"""Writes checkpoint folders in the LSD release's layout, and release-semantics oracles.

Built only from plain diffusers/torch modules (never from lsd's classes): the backbone is a
``UNet2DModel`` plus a ``downscale_cnn`` conv; the denoiser a ``UNet2DConditionModel`` whose
attention layers get a cartesian positional embedding added to their first input (forward
pre-hooks, mimicking the release's rebound ``forward``), stored under the release's keys
``...attn1.pos_emb.1.projection.weight`` / ``.bias`` / ``.pe``. Config files carry the key sets
the release wrote with diffusers 0.21.4.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import UNet2DConditionModel, UNet2DModel
from safetensors.torch import save_file
from torch import nn

# Key sets of the release's config.json files (diffusers 0.21.4).
BACKBONE_KEYS = (
    "act_fn", "add_attention", "attention_head_dim", "block_out_channels", "center_input_sample", "class_embed_type",
    "down_block_types", "downsample_padding", "downsample_type", "dropout", "flip_sin_to_cos", "freq_shift",
    "in_channels", "layers_per_block", "mid_block_scale_factor", "norm_eps", "norm_num_groups", "num_class_embeds",
    "out_channels", "resnet_time_scale_shift", "sample_size", "time_embedding_type", "up_block_types", "upsample_type",
)  # fmt: skip
UNET_KEYS = (
    "act_fn", "addition_embed_type", "addition_embed_type_num_heads", "addition_time_embed_dim", "attention_head_dim",
    "attention_type", "block_out_channels", "center_input_sample", "class_embed_type", "class_embeddings_concat",
    "conv_in_kernel", "conv_out_kernel", "cross_attention_dim", "cross_attention_norm", "down_block_types",
    "downsample_padding", "dropout", "dual_cross_attention", "encoder_hid_dim", "encoder_hid_dim_type",
    "flip_sin_to_cos", "freq_shift", "in_channels", "layers_per_block", "mid_block_only_cross_attention",
    "mid_block_scale_factor", "mid_block_type", "norm_eps", "norm_num_groups", "num_attention_heads",
    "num_class_embeds", "only_cross_attention", "out_channels", "projection_class_embeddings_input_dim",
    "resnet_out_scale_factor", "resnet_skip_time_act", "resnet_time_scale_shift", "sample_size", "time_cond_proj_dim",
    "time_embedding_act_fn", "time_embedding_dim", "time_embedding_type", "timestep_post_act",
    "transformer_layers_per_block", "up_block_types", "upcast_attention", "use_linear_projection",
)  # fmt: skip

TINY_BACKBONE = dict(
    sample_size=8, in_channels=16, out_channels=24, block_out_channels=(16, 32), layers_per_block=1,
    down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
    attention_head_dim=8, norm_num_groups=8,
)  # fmt: skip
TINY_UNET = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(16, 32), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    norm_num_groups=8, attention_head_dim=8, cross_attention_dim=16,
)  # fmt: skip
TINY_SLOT_ATTN = dict(
    num_iterations=3, num_slots=5, num_heads=2, input_size=24, out_size=16, slot_size=32, mlp_hidden_size=48,
    input_resolution=8, epsilon=1e-6, learnable_slot_init=False, bi_level=False,
)  # fmt: skip


def release_grid(side: int) -> torch.Tensor:
    """(1, 4, side, side): (x, y, 1-x, 1-y) at cell centres, x along the width."""
    c = (torch.arange(side, dtype=torch.float32) + 0.5) / side
    y, x = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([x, y, 1 - x, 1 - y])[None]


def _randomise(module: nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=gen))


def _write(folder: Path, class_name: str, config: dict, state: dict[str, torch.Tensor], fmt: str) -> None:
    folder.mkdir(parents=True)
    config = {"_class_name": class_name, "_diffusers_version": "0.21.4", **config}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.contiguous() for k, v in state.items()}
    if fmt == "safetensors":
        save_file(state, folder / "diffusion_pytorch_model.safetensors")
    else:
        torch.save(state, folder / "diffusion_pytorch_model.bin")


def _public(config) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in config.items()}


def pos_attention_layers(unet: UNet2DConditionModel) -> dict[str, int]:
    """``{attention module path: grid side}`` for attn1/attn2 of every cross-attention block."""
    side = unet.config.sample_size
    layers = {}
    sides = []
    for block in unet.down_blocks:
        sides.append(side)
        side = side // 2 if block.downsamplers is not None else side
    mid_side = side
    up_sides = []
    for block in unet.up_blocks:
        up_sides.append(side)
        side = side * 2 if block.upsamplers is not None else side
    groups = [("down_blocks", unet.down_blocks, sides), ("up_blocks", unet.up_blocks, up_sides)]
    for group, blocks, block_sides in groups:
        for i, (block, s) in enumerate(zip(blocks, block_sides, strict=True)):
            for j, attention in enumerate(getattr(block, "attentions", None) or []):
                for k, _ in enumerate(attention.transformer_blocks):
                    for name in ("attn1", "attn2"):
                        layers[f"{group}.{i}.attentions.{j}.transformer_blocks.{k}.{name}"] = s
    for j, attention in enumerate(unet.mid_block.attentions):
        for k, _ in enumerate(attention.transformer_blocks):
            for name in ("attn1", "attn2"):
                layers[f"mid_block.attentions.{j}.transformer_blocks.{k}.{name}"] = mid_side
    return layers


def write_release_checkpoint(root: Path, seed: int = 0, fmt: str = "safetensors") -> Path:
    """A ``checkpoint-N`` folder with tiny random components in the release's layout."""
    torch.manual_seed(seed)
    backbone = UNet2DModel(**TINY_BACKBONE)
    _randomise(backbone, seed)
    stride = 32 // TINY_BACKBONE["sample_size"]
    downscale = nn.Conv2d(3, TINY_BACKBONE["in_channels"], kernel_size=stride, stride=stride)
    state = {**backbone.state_dict(), **{f"downscale_cnn.{k}": v for k, v in downscale.state_dict().items()}}
    config = {k: v for k, v in _public(backbone.config).items() if k in BACKBONE_KEYS}
    _write(root / "unetencoder", "UNetEncoder", {**config, "input_resolution": 32, "input_channels": 3}, state, fmt)

    gen = torch.Generator().manual_seed(seed + 1)
    sa = TINY_SLOT_ATTN
    D, C = sa["slot_size"], sa["input_size"]

    def rnd(*shape, scale=0.2):
        return scale * torch.randn(*shape, generator=gen)

    sa_state = {
        "pos.projection.weight": rnd(C, 4, 1, 1), "pos.projection.bias": rnd(C), "pos.pe": release_grid(sa["input_resolution"]),
        "in_layer_norm.weight": 1 + rnd(C), "in_layer_norm.bias": rnd(C),
        "in_mlp.0.weight": rnd(C, C), "in_mlp.0.bias": rnd(C), "in_mlp.2.weight": rnd(C, C), "in_mlp.2.bias": rnd(C),
        "slot_mu": rnd(1, 1, D), "slot_log_sigma": rnd(1, 1, D),
        "norm_inputs.weight": 1 + rnd(C), "norm_inputs.bias": rnd(C),
        "norm_slots.weight": 1 + rnd(D), "norm_slots.bias": rnd(D), "norm_mlp.weight": 1 + rnd(D), "norm_mlp.bias": rnd(D),
        "project_q.weight": rnd(D, D), "project_k.weight": rnd(D, C), "project_v.weight": rnd(D, C),
        "gru.weight_ih": rnd(3 * D, D), "gru.weight_hh": rnd(3 * D, D), "gru.bias_ih": rnd(3 * D), "gru.bias_hh": rnd(3 * D),
        "mlp.0.weight": rnd(sa["mlp_hidden_size"], D), "mlp.0.bias": rnd(sa["mlp_hidden_size"]),
        "mlp.2.weight": rnd(D, sa["mlp_hidden_size"]), "mlp.2.bias": rnd(D),
        "out_layer_norm.weight": 1 + rnd(D), "out_layer_norm.bias": rnd(D),
        "out_linear.weight": rnd(sa["out_size"], D), "out_linear.bias": rnd(sa["out_size"]),
    }  # fmt: skip
    _write(root / "multiheadstevesa", "MultiHeadSTEVESA", dict(sa), sa_state, fmt)

    unet = UNet2DConditionModel(**TINY_UNET)
    _randomise(unet, seed + 2)
    state = dict(unet.state_dict())
    for path, side in pos_attention_layers(unet).items():
        channels = unet.get_submodule(path).to_q.in_features
        state[f"{path}.pos_emb.1.projection.weight"] = rnd(channels, 4, 1, 1)
        state[f"{path}.pos_emb.1.projection.bias"] = rnd(channels)
        state[f"{path}.pos_emb.1.pe"] = release_grid(side)
    config = {k: v for k, v in _public(unet.config).items() if k in UNET_KEYS}
    _write(
        root / "unet2dconditionmodelwithpos",
        "UNet2DConditionModelWithPos",
        {**config, "pos_type": "cartesian"},
        state,
        fmt,
    )
    return root


def _load(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    path = folder / "diffusion_pytorch_model.safetensors"
    return load_file(path) if path.exists() else torch.load(folder / "diffusion_pytorch_model.bin", weights_only=True)


def release_backbone_oracle(root: Path):
    """pixels -> UNet2DModel(downscale_cnn(pixels), t=0).sample, from the release folder."""
    state = _load(root / "unetencoder")
    unet = UNet2DModel(**TINY_BACKBONE)
    unet.load_state_dict({k: v for k, v in state.items() if not k.startswith("downscale_cnn.")})
    weight, bias = state["downscale_cnn.weight"], state["downscale_cnn.bias"]
    stride = weight.shape[-1]

    def run(pixels):
        return unet(torch.nn.functional.conv2d(pixels, weight, bias, stride=stride), 0).sample

    return run


def release_unet_oracle(root: Path) -> UNet2DConditionModel:
    """A plain UNet2DConditionModel whose attention inputs get the release's embedding added."""
    state = _load(root / "unet2dconditionmodelwithpos")
    unet = UNet2DConditionModel(**TINY_UNET)
    unet.load_state_dict({k: v for k, v in state.items() if ".pos_emb." not in k})
    for path in pos_attention_layers(unet):
        w = state[f"{path}.pos_emb.1.projection.weight"][:, :, 0, 0]
        b = state[f"{path}.pos_emb.1.projection.bias"]
        pe = state[f"{path}.pos_emb.1.pe"][0]  # (4, s, s)
        table = (torch.einsum("ck,khw->chw", w, pe) + b[:, None, None]).flatten(1).T  # (s*s, C), row-major

        def add_pos(module, args, kwargs, table=table):
            return (args[0] + table, *args[1:]), kwargs

        unet.get_submodule(path).register_forward_pre_hook(add_pos, with_kwargs=True)
    return unet
