"""Classifier-free-guidance sample grids on a tiny Stable-LSD-like model (a null embedding from a tiny CLIP)."""

import PIL.Image
import pytest
import torch

from lsd.generation import RELEASE_GUIDANCE_SCALES, encode_images, guidance_samples, plot_guidance_grid
from lsd.pipelines import LSDPipeline

from ..pipelines.test_pipeline import tiny_clip

STEPS = 3


@pytest.fixture(scope="module")
def stable_pipe(tiny_model):
    pipe = LSDPipeline.from_model(tiny_model)
    pipe.set_null_embedding(tiny_clip())
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def faces():
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(11)) * 2 - 1


def test_the_release_scales():
    assert RELEASE_GUIDANCE_SCALES == (1.0, 1.1, 1.3, 1.5, 2.0, 3.0)


def test_slots_are_encoded_once_and_scale_one_is_the_unguided_sample(stable_pipe, faces, tmp_path):
    encoded = []
    hook = stable_pipe.slot_attention.register_forward_hook(lambda m, args, out: encoded.append(args[0].shape[0]))
    try:
        samples = guidance_samples(
            stable_pipe, faces, scales=(1.0, 3.0), seeds=(0, 1), num_inference_steps=STEPS, seed_for_slots=5
        )
    finally:
        hook.remove()
    assert encoded == [2]  # one encoding of the two images, shared by every scale and seed
    assert samples.shape == (2, 2, 2, 3, 32, 32) and samples.min() >= 0 and samples.max() <= 1
    slots = encode_images(stable_pipe.model, faces, 5, [0, 1]).slots
    for k, seed in enumerate((0, 1)):
        plain = stable_pipe(
            slots=slots,
            num_inference_steps=STEPS,
            generator=[torch.Generator().manual_seed(seed) for _ in range(2)],
            output_type="pt",
        ).images
        assert torch.equal(samples[:, 0, k], plain)  # bitwise: scale 1.0 is no guidance, same generator
    assert (samples[:, 1] - samples[:, 0]).abs().max() > 1e-2  # guidance 3.0 changes the images
    assert (samples[:, :, 0] - samples[:, :, 1]).abs().max() > 1e-2  # another seed, another sample
    # the generator is seeded by the seed's value, not its position in `seeds`
    again = guidance_samples(stable_pipe, faces, scales=(3.0,), seeds=(1,), num_inference_steps=STEPS, seed_for_slots=5)  # fmt: skip
    assert torch.equal(again[:, 0, 0], samples[:, 1, 1])
    plot_guidance_grid(samples, tmp_path / "cfg.png", (1.0, 3.0), seeds_shown=(0, 1), seeds=(0, 1))
    width, height = PIL.Image.open(tmp_path / "cfg.png").size
    assert height > width  # rows: 2 images x 2 seeds; columns: 2 scales
    with pytest.raises(ValueError, match=r"`seeds_shown` must be positions in \[0, 2\)"):
        plot_guidance_grid(samples, tmp_path / "bad.png", (1.0, 3.0), seeds_shown=(2,))
    assert not (tmp_path / "bad.png").exists()


def _fresh_pipe() -> LSDPipeline:
    """A pipeline over its own tiny model (the tests below break its modules on purpose)."""
    from lsd.configs import build_model

    torch.manual_seed(0)
    return LSDPipeline.from_model(build_model("tiny").eval())


def _no_compute(pipe):
    def fail(*args, **kwargs):
        raise AssertionError("computed before checking the arguments")

    pipe.unet.forward = fail
    pipe.slot_attention.forward = fail


def test_plain_lsd_is_refused_before_encoding_or_sampling(faces):
    pipe = _fresh_pipe()
    _no_compute(pipe)
    with pytest.raises(ValueError, match="no null embedding"):
        guidance_samples(pipe, faces, num_inference_steps=STEPS)
    pipe.set_null_embedding(torch.zeros(1, 3, 16))  # for 3 slots; the model has 4
    with pytest.raises(ValueError, match="null embedding covers 3 slots, the slots to decode are 4"):
        guidance_samples(pipe, faces, num_inference_steps=STEPS)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scales": (1.0, 0.5)}, r"`scales` must be finite numbers >= 1.0 .*0.5"),
        ({"scales": (float("nan"),)}, r"`scales` must be finite"),
        ({"scales": ()}, r"`scales` is empty"),
        ({"scales": ("2",)}, r"`scales` must be finite numbers"),
        ({"seeds": (0, -1)}, r"`seeds` must be ints"),
        ({"seeds": (0, 0)}, r"`seeds` repeats a seed"),
        ({"seeds": ()}, r"`seeds` is empty"),
        ({"num_inference_steps": 0}, r"`num_inference_steps` must be a positive int"),
    ],
)
def test_bad_scales_and_seeds_are_errors_naming_them(faces, kwargs, message):
    pipe = _fresh_pipe()
    pipe.set_null_embedding(torch.zeros(1, 4, 16))
    _no_compute(pipe)
    with pytest.raises(ValueError, match=message):
        guidance_samples(pipe, faces, **kwargs)
    with pytest.raises(ValueError, match=r"`pixel_values` must be \(N, 3, 32, 32\)"):
        guidance_samples(pipe, faces[:, :, :16])
