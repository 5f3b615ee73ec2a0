"""LSDPipeline: the release's validation sampler, Stable-LSD guidance, input checks, persistence."""

from __future__ import annotations

import json

import numpy as np
import PIL.Image
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

from lsd.configs import build_model, load_config
from lsd.models.autoencoder import PixelUnshuffleAutoencoder
from lsd.models.pretrained import PretrainedNotFound
from lsd.pipelines import NULL_EMBEDDING_FILE, LSDPipeline, LSDPipelineOutput, encode_null_embedding

from ..models.test_lsd import alphas_bar
from ..release_fixture import write_release_checkpoint
from ..test_official import tiny_vae

SLOT_WIDTH = 16  # the tiny config's cross_attention_dim


def tiny(prediction_type: str = "epsilon", **objective):
    config = load_config("tiny")
    config["scheduler"]["prediction_type"] = prediction_type
    config["objective"].update(objective)
    torch.manual_seed(0)
    return build_model(config).eval()


def pipeline(model) -> LSDPipeline:
    pipe = LSDPipeline.from_model(model)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def slots_for(batch: int = 2, num_slots: int = 4, seed: int = 5) -> torch.Tensor:
    return torch.randn(batch, num_slots, SLOT_WIDTH, generator=torch.Generator().manual_seed(seed))


def stable_diffusion(model, text_encoder=None, tokenizer=None) -> StableDiffusionPipeline:
    """The release's validation sampler (train_lsd.py) on the same weights."""
    pipe = StableDiffusionPipeline(
        vae=model.vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=model.unet,
        scheduler=DPMSolverMultistepScheduler.from_config(model.scheduler.config),
        safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_clip():
    """A CLIP text encoder with the tiny denoiser's width and a four-token BPE tokenizer."""
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=[], pad_token="!")  # SD 2.1 pads with "!"
    torch.manual_seed(3)
    config = CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=SLOT_WIDTH, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=16, bos_token_id=0, eos_token_id=1, pad_token_id=2,
    )  # fmt: skip
    return CLIPTextModel(config).eval(), tokenizer


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_equals_the_releases_validation_sampler(prediction_type):
    """StableDiffusionPipeline(text_encoder=None, DPM-Solver++) with prompt_embeds=slots, 25 steps, guidance 1."""
    model = tiny(prediction_type)
    slots = slots_for()
    ours = pipeline(model)(
        slots=slots, num_inference_steps=25, generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    theirs = stable_diffusion(model)(
        prompt_embeds=slots, num_inference_steps=25, guidance_scale=1.0,
        generator=torch.Generator().manual_seed(0), output_type="pt",
    ).images  # fmt: skip
    assert isinstance(ours, LSDPipelineOutput) and ours.slots is None and ours.masks is None
    assert ours.images.shape == (2, 3, 32, 32) and ours.images.min() >= 0 and ours.images.max() <= 1
    assert ours.images.std() > 0.01  # not a constant image
    torch.testing.assert_close(ours.images, theirs, rtol=0, atol=0)  # bitwise: the same computation
    other_seed = pipeline(model)(
        slots=slots, num_inference_steps=25, generator=torch.Generator().manual_seed(1), output_type="pt"
    ).images
    assert (other_seed - theirs).abs().max() > 1e-3


def test_guidance_equals_stable_diffusion_cfg_with_the_empty_prompt():
    """Stable-LSD: SD's pipeline with a text encoder, prompt_embeds=slots and no negative embeddings."""
    model = tiny()
    text_encoder, tokenizer = tiny_clip()
    slots = slots_for()
    pipe = pipeline(model)
    null = pipe.set_null_embedding((text_encoder, tokenizer))
    sd = stable_diffusion(model, text_encoder, tokenizer)
    _, negative = sd.encode_prompt(None, "cpu", 1, True, prompt_embeds=slots)
    assert null.shape == (1, 4, SLOT_WIDTH)
    torch.testing.assert_close(negative, null.expand(2, -1, -1), rtol=0, atol=0)

    def run(p, **kwargs):
        return p(prompt_embeds=slots, **kwargs) if p is sd else p(slots=slots, **kwargs)

    common = {"num_inference_steps": 10, "output_type": "pt"}
    for scale in (1.0, 3.0):
        ours = run(pipe, guidance_scale=scale, generator=torch.Generator().manual_seed(0), **common).images
        theirs = run(sd, guidance_scale=scale, generator=torch.Generator().manual_seed(0), **common).images
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    plain = pipeline(model)(slots=slots, generator=torch.Generator().manual_seed(0), **common).images
    at_one = pipe(slots=slots, guidance_scale=1.0, generator=torch.Generator().manual_seed(0), **common).images
    guided = pipe(slots=slots, guidance_scale=3.0, generator=torch.Generator().manual_seed(0), **common).images
    assert torch.equal(at_one, plain)  # guidance 1.0 is no guidance
    assert (guided - plain).abs().max() > 1e-2  # and guidance changes the images


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
@pytest.mark.parametrize("min_timestep", [0, 300])
def test_sampling_stays_in_the_trained_timestep_range_and_an_oracle_denoiser_recovers_the_image(
    images, prediction_type, min_timestep
):
    config = load_config("tiny")
    config["scheduler"]["prediction_type"] = prediction_type
    config["unet"]["in_channels"] = config["unet"]["out_channels"] = 12
    config["objective"]["min_timestep"] = min_timestep
    model = build_model(config, vae=PixelUnshuffleAutoencoder(factor=2, scaling_factor=1.5)).double()
    z = torch.nn.functional.pixel_unshuffle(images.double(), 2) * 1.5  # the clean latents, known exactly
    seen = []

    def oracle(sample, timestep, encoder_hidden_states):  # the exact denoiser output for clean latents z
        seen.append(int(timestep))
        ab = alphas_bar(int(timestep))
        eps = (sample - ab.sqrt() * z) / (1 - ab).sqrt()
        out = eps if prediction_type == "epsilon" else ab.sqrt() * eps - (1 - ab).sqrt() * z
        return type("Out", (), {"sample": out})()

    model.unet.forward = oracle
    slots = torch.zeros(images.shape[0], 3, SLOT_WIDTH, dtype=torch.float64)
    out = pipeline(model)(
        slots=slots,
        num_inference_steps=10,
        sampler="ddim",
        generator=torch.Generator().manual_seed(0),
        output_type="pt",
    ).images
    assert min(seen) >= min_timestep
    if min_timestep:
        assert len(seen) < 10  # stopped at the last timestep the denoiser was trained on
    else:
        assert len(seen) == 10 and min(seen) < 300
    # exact clean estimate at the stop; the full DDIM path goes through the scheduler's float32 alphas
    expected = (images.double().clamp(-1, 1) + 1) / 2
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-6 if min_timestep else 1e-5)


def test_images_are_encoded_segmented_and_decoded_like_their_slots(tiny_model, images):
    pipe = pipeline(tiny_model.eval())
    noise = torch.randn(2, 4, 32, generator=torch.Generator().manual_seed(2))
    out = pipe(images=images, slot_noise=noise, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt")  # fmt: skip
    assert torch.equal(out.slots, tiny_model.encode(images, noise=noise).slots)
    assert torch.equal(out.masks, tiny_model.segment(images, 32, noise=noise))
    from_slots = pipe(
        slots=out.slots, num_inference_steps=3, generator=torch.Generator().manual_seed(0), output_type="pt"
    )
    assert torch.equal(out.images, from_slots.images)
    # without slot_noise the slot init is drawn first from the generator, then the latents
    gen = torch.Generator().manual_seed(4)
    drawn = pipe(images=list(_to_pil(images)), num_inference_steps=3, generator=gen, output_type="pt")
    gen = torch.Generator().manual_seed(4)
    noise = torch.randn(2, 4, 32, generator=gen)
    pil_pixels = torch.stack(
        [torch.from_numpy(np.array(i)).permute(2, 0, 1).float() / 127.5 - 1 for i in _to_pil(images)]
    )
    assert torch.equal(drawn.slots, tiny_model.encode(pil_pixels, noise=noise).slots)
    again = pipe(slots=drawn.slots, num_inference_steps=3, generator=gen, output_type="pt")
    manual = pipe(
        slots=drawn.slots, num_inference_steps=3, generator=torch.Generator().manual_seed(4), output_type="pt"
    )
    assert not torch.equal(again.images, manual.images)  # the generator had moved on by the slot draw


def _to_pil(images: torch.Tensor) -> list[PIL.Image.Image]:
    arrays = ((images + 1) * 127.5).round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    return [PIL.Image.fromarray(a) for a in arrays]


def test_output_types_and_per_sample_generators_make_batching_irrelevant(tiny_model):
    pipe = pipeline(tiny_model.eval())
    slots = slots_for(batch=3)

    def gens():
        return [torch.Generator().manual_seed(10 + i) for i in range(3)]

    whole = pipe(slots=slots, num_inference_steps=4, generator=gens(), output_type="pt").images
    batched = pipe(slots=slots, num_inference_steps=4, generator=gens(), output_type="pt", batch_size=2).images
    torch.testing.assert_close(batched, whole, rtol=0, atol=1e-6)
    single = pipe(slots=slots[1:2], num_inference_steps=4, generator=gens()[1:2], output_type="pt").images
    torch.testing.assert_close(single, whole[1:2], rtol=0, atol=1e-6)
    as_np = pipe(slots=slots, num_inference_steps=4, generator=gens(), output_type="np").images
    assert as_np.shape == (3, 32, 32, 3) and np.allclose(as_np, whole.permute(0, 2, 3, 1).numpy())
    as_pil = pipe(slots=slots, num_inference_steps=4, generator=gens()).images
    assert len(as_pil) == 3 and as_pil[0].size == (32, 32)
    assert np.array_equal(np.array(as_pil[2]), (as_np[2] * 255).round().astype(np.uint8))
    latents = pipe(slots=slots, num_inference_steps=4, generator=gens(), output_type="latent").images
    assert latents.shape == (3, 4, 16, 16)
    torch.testing.assert_close(((tiny_model.decode_latents(latents) / 2 + 0.5).clamp(0, 1)), whole)


BAD_CALLS = {
    "images where slots are expected": ({"slots": torch.zeros(2, 3, 32, 32)}, r"slots: .*images go to images="),
    "slots where images are expected": ({"images": torch.zeros(2, 4, 16)}, r"images: .*slot vectors go to slots="),
    "slots of the wrong width": ({"slots": torch.zeros(2, 4, 20)}, r"slots: width 20 .*cross_attention_dim 16"),
    "pixels outside [-1, 1]": ({"images": torch.full((1, 3, 32, 32), 255.0)}, r"images: pixel values must lie in \[-1, 1\]"),
    "images of the wrong size": ({"images": torch.zeros(1, 3, 64, 64)}, r"images: expected 32x32"),
    "PIL images of the wrong size": ({"images": PIL.Image.new("RGB", (48, 48))}, r"images: PIL images must be 32x32"),
    "unknown sampler": ({"slots": torch.zeros(1, 4, 16), "sampler": "euler"}, r"sampler: must be one of \['ddim', 'dpm'\]"),
    "guidance without a null embedding": ({"slots": torch.zeros(1, 4, 16), "guidance_scale": 2.0}, r"guidance_scale=2.0: .*no unconditional branch"),
    "guidance below one": ({"slots": torch.zeros(1, 4, 16), "guidance_scale": 0.5}, r"guidance_scale: must be >= 1.0"),
    "neither images nor slots": ({}, r"exactly one of images= .* or slots="),
    "unknown output type": ({"slots": torch.zeros(1, 4, 16), "output_type": "jpeg"}, r"output_type: must be one of"),
    "zero steps": ({"slots": torch.zeros(1, 4, 16), "num_inference_steps": 0}, r"num_inference_steps: must be a positive int"),
    "generators of the wrong count": ({"slots": torch.zeros(2, 4, 16), "generator": [torch.Generator()]}, r"generator: got 1 generators for 2"),
}  # fmt: skip


@pytest.mark.parametrize("kwargs, message", list(BAD_CALLS.values()), ids=list(BAD_CALLS))
def test_bad_input_is_a_clear_error_naming_the_argument(tiny_model, kwargs, message):
    pipe = pipeline(tiny_model)
    pipe.unet.forward = None  # any denoiser call would fail differently: errors come before compute
    with pytest.raises(ValueError, match=message):
        pipe(**kwargs)


def test_null_embedding_checks(tiny_model, tmp_path):
    pipe = pipeline(tiny_model)
    with pytest.raises(ValueError, match=r"null embedding: expected shape \(1, S, 16\)"):
        pipe.set_null_embedding(torch.zeros(1, 4, 32))
    pipe.set_null_embedding(torch.zeros(3, 16))
    with pytest.raises(ValueError, match="the null embedding covers 3 slots, the slots to decode are 4"):
        pipe(slots=torch.zeros(1, 4, 16), guidance_scale=2.0)
    with pytest.raises(PretrainedNotFound, match="pretrained CLIP text encoder not found"):
        pipe.set_null_embedding(str(tmp_path / "no-such-folder"))


def test_null_embedding_from_a_text_encoder_folder_is_saved_with_the_model(tiny_model, tmp_path):
    text_encoder, tokenizer = tiny_clip()
    text_encoder.save_pretrained(tmp_path / "sd" / "text_encoder")
    tokenizer.save_pretrained(tmp_path / "sd" / "tokenizer")
    pipe = pipeline(tiny_model.eval())
    from_folder = pipe.set_null_embedding(str(tmp_path / "sd"))  # loaded offline, as from the HF cache
    assert torch.equal(from_folder, encode_null_embedding(text_encoder, tokenizer, 4))
    pipe.save_pretrained(tmp_path / "model")
    assert (tmp_path / "model" / NULL_EMBEDDING_FILE).is_file()
    loaded = LSDPipeline.from_pretrained(tmp_path / "model")  # no text encoder needed any more
    loaded.set_progress_bar_config(disable=True)
    assert torch.equal(loaded.null_embedding, from_folder)
    kwargs = {"slots": slots_for(), "num_inference_steps": 3, "guidance_scale": 2.0, "output_type": "pt"}
    a = pipe(generator=torch.Generator().manual_seed(0), **kwargs).images
    b = loaded(generator=torch.Generator().manual_seed(0), **kwargs).images
    assert torch.equal(a, b)
    # a training checkpoint (its model/ subfolder) loads the same way
    checkpoint = tmp_path / "run" / "checkpoints" / "checkpoint-00000002"
    pipe.save_pretrained(checkpoint / "model")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 2}))
    from_run = LSDPipeline.from_pretrained(tmp_path / "run")
    assert torch.equal(from_run.null_embedding, from_folder)
    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in from_run.unet.state_dict().items())


def test_release_checkpoints_load_with_a_vae(tmp_path):
    release = write_release_checkpoint(tmp_path / "checkpoint-100")
    with pytest.raises(ValueError, match="release checkpoint, which stores no autoencoder: pass vae="):
        LSDPipeline.from_pretrained(release)
    pipe = LSDPipeline.from_pretrained(release, vae=tiny_vae())
    pipe.set_progress_bar_config(disable=True)
    images = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = pipe(images=images, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="pt")
    assert out.images.shape == (1, 3, 32, 32) and out.slots.shape[0] == 1
