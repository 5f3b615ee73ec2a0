"""Slot attention as in the LSD release (its ``MultiHeadSTEVESA``): the readable torch reference.

The algorithm (Locatello et al. 2020, with the release's multi-head variant):

    x      = in_mlp(in_layer_norm(features + pos(grid)))           (B, N, D_in)
    k, v   = project_k(norm_inputs(x)) * slot_size**-0.5, project_v(norm_inputs(x))
             (keys also times ``logit_scale``, 1.0 in the release)
    slots  = slot_mu + exp(slot_log_sigma) * noise                 (B, S, D)
    repeat num_iterations:
        q       = project_q(norm_slots(slots))                      (B, H, S, d)
        attn    = softmax over heads x slots of k @ q^T             (B, H, N, S)
        w       = (attn + eps) / sum_N (attn + eps)                 (B, H, N, S)
        updates = w^T @ v                                           (B, S, D)  (heads merged)
        slots   = gru(updates, slots); slots = slots + mlp(norm_mlp(slots))
    out    = out_linear(out_layer_norm(slots))                      (B, S, out_size)

Faithfulness notes (the release, which this follows where the paper is silent):
- the key scale is ``slot_size ** -0.5`` with the FULL slot size, not the per-head size;
- the softmax is taken jointly over heads x slots, not per head;
- the attention map returned is that of the last iteration, before ``+ eps``;
- with a time axis, frames are processed in order and slots carry over between frames.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from lsd_kernels.reference import slot_attention_updates_ref
from torch import nn

from lsd.backends import resolve_kernel_backend
from lsd.models.positional import CartesianPositionalEmbedding

__all__ = ["SlotAttention", "SlotAttentionOutput", "sample_slot_noise", "slot_attention_updates_ref"]

#: The read-out of one iteration: :func:`lsd_kernels.reference.slot_attention_updates_ref` (torch
#: backend) or the fused :func:`lsd_kernels.slot_attention.slot_attention_updates` (triton backend).
UpdatesFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class SlotAttentionOutput:
    """Output of :class:`SlotAttention`.

    Attributes:
        slots: ``(B, S, out_size)`` (``(B, T, S, out_size)`` with a time axis), after
            ``out_linear(out_layer_norm(.))``: what the decoder is conditioned on.
        attn: ``(B, H, N, S)`` (``(B, T, H, N, S)``), last iteration, softmax over heads x slots,
            before ``+ epsilon``. ``N = h * w`` in row-major order.
        hidden: ``(B, S, slot_size)`` (``(B, T, S, slot_size)``): slots before the output head.
    """

    slots: torch.Tensor
    attn: torch.Tensor
    hidden: torch.Tensor


def sample_slot_noise(
    num_slots: int,
    slot_size: int,
    batch_size: int,
    generator: torch.Generator | list[torch.Generator] | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The slot-init noise ``(batch_size, num_slots, slot_size)``: standard-normal draws that
    :meth:`SlotAttention.forward` turns into initial slots (``mu + sigma * noise``, the release's
    Gaussian init). The project's one slot-noise draw: training, the pipeline, validation figures
    and evaluation all call it.

    ``generator``: one generator, or one per sample (row ``b`` then comes from ``generator[b]``
    alone, as diffusers' ``randn_tensor`` draws it); draws happen on the generator's device and
    are moved to ``device`` (default: the generator's device, else the CPU).
    """
    from diffusers.utils.torch_utils import randn_tensor

    if device is None:
        first = generator[0] if isinstance(generator, list) and generator else generator
        device = first.device if first is not None else torch.device("cpu")
    shape = (batch_size, num_slots, slot_size)
    return randn_tensor(shape, generator=generator, device=torch.device(device), dtype=dtype)


class SlotAttention(ModelMixin, ConfigMixin):
    """Multi-head slot attention over a ``(B, C, h, w)`` (or ``(B, T, C, h, w)``) feature map.

    Parameter names and the config fields equal the release's ``MultiHeadSTEVESA``, so its
    ``multiheadstevesa/`` checkpoint folders load with :func:`lsd.load_official_checkpoint`.

    Args:
        num_iterations: refinement iterations per frame.
        num_slots: ``S``.
        num_heads: ``H``; ``slot_size`` must be divisible by it.
        input_size: feature channels ``C``.
        out_size: width of the returned slots (the decoder's ``cross_attention_dim``).
        slot_size: ``D``.
        mlp_hidden_size: hidden width of the residual slot MLP.
        input_resolution: side of the feature map (``h == w``).
        epsilon: added to the attention before normalising over inputs (release configs: 1e-6).
        learnable_slot_init: per-slot learned initial slots instead of a shared Gaussian.
        bi_level: bi-level optimisation (Jia et al. 2023): the last iteration starts from detached
            slots with a straight-through gradient to ``slot_mu``; needs ``learnable_slot_init``.
        logit_scale: extra factor on the attention logits, on top of ``slot_size ** -0.5``
            (1.0 = the release). Values above 1 make the attention start sharper than the
            near-uniform split of a fresh model (not in the release; a documented option).
    """

    @register_to_config
    def __init__(
        self,
        num_iterations: int = 3,
        num_slots: int = 24,
        num_heads: int = 1,
        input_size: int = 192,
        out_size: int = 192,
        slot_size: int = 192,
        mlp_hidden_size: int = 192,
        input_resolution: int = 64,
        epsilon: float = 1e-6,
        learnable_slot_init: bool = False,
        bi_level: bool = False,
        logit_scale: float = 1.0,
    ) -> None:
        super().__init__()
        sizes = {"num_iterations": num_iterations, "num_slots": num_slots, "num_heads": num_heads,
                 "input_size": input_size, "out_size": out_size, "slot_size": slot_size,
                 "mlp_hidden_size": mlp_hidden_size, "input_resolution": input_resolution}  # fmt: skip
        for name, value in sizes.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"slot_attention.{name}={value!r}: must be an integer >= 1")
        if slot_size % num_heads != 0:
            raise ValueError(f"slot_size ({slot_size}) must be divisible by num_heads ({num_heads})")
        if bi_level and not learnable_slot_init:
            raise ValueError("bi_level=True requires learnable_slot_init=True (as in the release)")
        if not logit_scale > 0:
            raise ValueError(f"logit_scale must be positive, got {logit_scale}")

        self.pos = CartesianPositionalEmbedding(input_size, input_resolution)
        self.in_layer_norm = nn.LayerNorm(input_size)
        self.in_mlp = nn.Sequential(nn.Linear(input_size, input_size), nn.ReLU(), nn.Linear(input_size, input_size))

        if learnable_slot_init:
            self.slot_mu = nn.Parameter(torch.empty(1, num_slots, slot_size))
            nn.init.xavier_uniform_(self.slot_mu)
        else:
            self.slot_mu = nn.Parameter(torch.empty(1, 1, slot_size))
            self.slot_log_sigma = nn.Parameter(torch.empty(1, 1, slot_size))
            nn.init.xavier_uniform_(self.slot_mu)
            nn.init.xavier_uniform_(self.slot_log_sigma)

        self.norm_inputs = nn.LayerNorm(input_size)
        self.norm_slots = nn.LayerNorm(slot_size)
        self.norm_mlp = nn.LayerNorm(slot_size)

        self.project_q = nn.Linear(slot_size, slot_size, bias=False)
        self.project_k = nn.Linear(input_size, slot_size, bias=False)
        self.project_v = nn.Linear(input_size, slot_size, bias=False)

        self.gru = nn.GRUCell(slot_size, slot_size)
        self.mlp = nn.Sequential(
            nn.Linear(slot_size, mlp_hidden_size), nn.ReLU(), nn.Linear(mlp_hidden_size, slot_size)
        )

        self.out_layer_norm = nn.LayerNorm(slot_size)
        self.out_linear = nn.Linear(slot_size, out_size)

        self.kernel_backend = "torch"
        self._updates_fn: UpdatesFn = slot_attention_updates_ref

    # -- backend -------------------------------------------------------------------------------
    def set_kernel_backend(self, name: str) -> str:
        """Use ``"torch"``, ``"triton"`` or ``"auto"`` for the attention read-out; returns the
        backend resolved for this module's device. Raises when ``triton`` cannot run here."""
        resolved = resolve_kernel_backend(name, self.slot_mu.device)
        if resolved == "triton":
            from lsd_kernels.slot_attention import slot_attention_updates

            self._updates_fn = slot_attention_updates
        else:
            self._updates_fn = slot_attention_updates_ref
        self.kernel_backend = resolved
        return resolved

    # -- pieces --------------------------------------------------------------------------------
    def embed_inputs(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, T, C, h, w)`` feature maps -> input tokens ``(B, T, N, C)`` (pos added, MLP'd)."""
        batch, frames, channels, height, width = features.shape
        res = self.config.input_resolution
        if channels != self.config.input_size or height != res or width != res:
            raise ValueError(
                f"SlotAttention expects features (B, [T,] {self.config.input_size}, {res}, {res}) "
                f"(config input_size, input_resolution); got channels={channels}, h={height}, w={width}"
            )
        tokens = features.flatten(3).transpose(2, 3).reshape(batch * frames, height * width, channels)
        tokens = self.pos(tokens).reshape(batch, frames, height * width, channels)
        return self.in_mlp(self.in_layer_norm(tokens))

    def initial_slots(self, batch_size: int, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Initial slots ``(B, S, D)``: ``slot_mu + exp(slot_log_sigma) * noise`` (Gaussian init,
        ``noise`` drawn here when not given) or ``slot_mu`` repeated (learnable init)."""
        cfg = self.config
        if cfg.learnable_slot_init:
            if noise is not None:
                raise ValueError(
                    "`noise` is only used by the Gaussian slot init; this model has learnable_slot_init=True"
                )
            return self.slot_mu.expand(batch_size, -1, -1)
        shape = (batch_size, cfg.num_slots, cfg.slot_size)
        if noise is None:
            noise = torch.randn(shape, device=self.slot_mu.device, dtype=self.slot_mu.dtype)
        elif tuple(noise.shape) != shape:
            raise ValueError(f"`noise` must have shape (B, num_slots, slot_size) = {shape}, got {tuple(noise.shape)}")
        return self.slot_mu + torch.exp(self.slot_log_sigma) * noise

    def project_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Input tokens ``(B, N, C)`` -> keys and values ``(B, H, N, d)``; keys pre-scaled by
        ``logit_scale * slot_size ** -0.5``."""
        batch, num_inputs, _ = tokens.shape
        heads = self.config.num_heads
        tokens = self.norm_inputs(tokens)
        k = self.project_k(tokens).view(batch, num_inputs, heads, -1).transpose(1, 2)
        v = self.project_v(tokens).view(batch, num_inputs, heads, -1).transpose(1, 2)
        return k * (self.config.logit_scale * self.config.slot_size**-0.5), v

    def step(self, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One iteration: slots ``(B, S, D)``, k/v ``(B, H, N, d)`` -> new slots, attn ``(B, H, N, S)``."""
        batch, num_slots, slot_size = slots.shape
        heads = self.config.num_heads
        q = self.project_q(self.norm_slots(slots)).view(batch, num_slots, heads, -1).transpose(1, 2)  # (B, H, S, d)
        updates, attn = self._updates_fn(q, k, v, self.config.epsilon)  # (B, H, S, d), (B, H, N, S)
        updates = updates.transpose(1, 2).reshape(batch * num_slots, slot_size)  # heads merged
        slots = self.gru(updates, slots.reshape(batch * num_slots, slot_size)).view(batch, num_slots, slot_size)
        slots = slots + self.mlp(self.norm_mlp(slots))
        return slots, attn

    def iterate(self, slots: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """All iterations for one frame; returns the final slots and the last iteration's attn."""
        attn = None
        for i in range(self.config.num_iterations):
            if self.config.bi_level and i == self.config.num_iterations - 1:
                # Straight-through: value of the detached slots, gradient flows only to slot_mu.
                slots = slots.detach() + self.slot_mu - self.slot_mu.detach()
            slots, attn = self.step(slots, k, v)
        return slots, attn

    def forward(self, features: torch.Tensor, noise: torch.Tensor | None = None) -> SlotAttentionOutput:
        """Args:
        features: ``(B, C, h, w)`` or ``(B, T, C, h, w)``.
        noise: optional ``(B, S, slot_size)`` standard-normal draws for the Gaussian init.
        """
        if features.ndim not in (4, 5):
            raise ValueError(f"features must be (B, C, h, w) or (B, T, C, h, w), got shape {tuple(features.shape)}")
        video = features.ndim == 5
        if not video:
            features = features.unsqueeze(1)
        batch, frames = features.shape[:2]

        tokens = self.embed_inputs(features)  # (B, T, N, C)
        slots = self.initial_slots(batch, noise)
        hidden, attns = [], []
        for t in range(frames):
            k, v = self.project_inputs(tokens[:, t])
            slots, attn = self.iterate(slots, k, v)
            hidden.append(slots)
            attns.append(attn)
        hidden_t = torch.stack(hidden, dim=1)  # (B, T, S, D)
        attn_t = torch.stack(attns, dim=1)  # (B, T, H, N, S)
        slots_out = self.out_linear(self.out_layer_norm(hidden_t))
        if not video:
            return SlotAttentionOutput(slots=slots_out[:, 0], attn=attn_t[:, 0], hidden=hidden_t[:, 0])
        return SlotAttentionOutput(slots=slots_out, attn=attn_t, hidden=hidden_t)
