"""An independent slot-attention oracle written from docs/model.md, on a state dict.

Deliberately plain: explicit loops over heads, no shared code with lsd.models.slot_attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _ln(x, sd, name):
    return F.layer_norm(x, x.shape[-1:], sd[f"{name}.weight"], sd[f"{name}.bias"])


def _lin(x, sd, name, bias=True):
    return F.linear(x, sd[f"{name}.weight"], sd.get(f"{name}.bias") if bias else None)


def _gru(x, h, sd):
    gi = F.linear(x, sd["gru.weight_ih"], sd["gru.bias_ih"])
    gh = F.linear(h, sd["gru.weight_hh"], sd["gru.bias_hh"])
    i_r, i_z, i_n = gi.chunk(3, -1)
    h_r, h_z, h_n = gh.chunk(3, -1)
    r = torch.sigmoid(i_r + h_r)
    z = torch.sigmoid(i_z + h_z)
    n = torch.tanh(i_n + r * h_n)
    return (1 - z) * n + z * h


def oracle_slot_attention(sd, cfg, features, noise):
    """features (B, T, C, h, w); noise (B, S, D) or None (learnable init).
    Returns slots (B, T, S, out), attn (B, T, H, N, S)."""
    B, T, C, h, w = features.shape
    H, D, S = cfg["num_heads"], cfg["slot_size"], cfg["num_slots"]
    d = D // H
    # positional grid (x, y, 1-x, 1-y) of cell centres, x along width
    centres = (torch.arange(h, dtype=features.dtype) + 0.5) / h
    gy, gx = torch.meshgrid(centres, centres, indexing="ij")
    grid = torch.stack([gx, gy, 1 - gx, 1 - gy])  # (4, h, w)
    pos = (
        torch.einsum("ck,khw->chw", sd["pos.projection.weight"][:, :, 0, 0], grid)
        + sd["pos.projection.bias"][:, None, None]
    )
    x = (features + pos).flatten(3).transpose(2, 3)  # (B, T, N, C)
    x = _lin(torch.relu(_lin(_ln(x, sd, "in_layer_norm"), sd, "in_mlp.0")), sd, "in_mlp.2")
    if noise is None:
        slots = sd["slot_mu"].expand(B, S, D)
    else:
        slots = sd["slot_mu"] + torch.exp(sd["slot_log_sigma"]) * noise
    x = _ln(x, sd, "norm_inputs")
    k = _lin(x, sd, "project_k", bias=False) / D**0.5
    v = _lin(x, sd, "project_v", bias=False)
    out_slots, out_attn = [], []
    for t in range(T):
        for _ in range(cfg["num_iterations"]):
            prev = slots
            q = _lin(_ln(slots, sd, "norm_slots"), sd, "project_q", bias=False)
            logits = torch.cat(
                [k[:, t, :, i * d : (i + 1) * d] @ q[..., i * d : (i + 1) * d].transpose(1, 2) for i in range(H)],
                dim=-1,
            )
            attn = logits.softmax(-1)  # (B, N, H*S), joint over heads x slots
            per_head = []
            for i in range(H):
                a = attn[..., i * S : (i + 1) * S] + cfg["epsilon"]
                a = a / a.sum(dim=1, keepdim=True)
                per_head.append(a.transpose(1, 2) @ v[:, t, :, i * d : (i + 1) * d])  # (B, S, d)
            updates = torch.cat(per_head, dim=-1)
            slots = _gru(updates, prev, sd)
            slots = slots + _lin(torch.relu(_lin(_ln(slots, sd, "norm_mlp"), sd, "mlp.0")), sd, "mlp.2")
        out_slots.append(_lin(_ln(slots, sd, "out_layer_norm"), sd, "out_linear"))
        out_attn.append(torch.stack([attn[..., i * S : (i + 1) * S] for i in range(H)], dim=1))
    return torch.stack(out_slots, 1), torch.stack(out_attn, 1)
