import pytest
import torch

from lsd.generation import ConceptLibrary, GenerationProtocol, evaluate_generation


def test_generation_measures_do_not_depend_on_the_batching_and_pin_the_protocol(tiny_model, tiny_images):
    library = ConceptLibrary.from_model(
        tiny_model, tiny_images, num_images=12, num_concepts=5, num_background_concepts=2
    )
    runs = []
    for batch_size in (2, 3):
        protocol = GenerationProtocol(num_images=4, num_inference_steps=2, seed=1, batch_size=batch_size)
        record = evaluate_generation(tiny_model, tiny_images, library, protocol)
        runs.append(record)
    a, b = runs
    for key in ("own_slots", "composed", "shuffled"):
        assert a["images"][key].shape == (4, 3, 32, 32)
        torch.testing.assert_close(a["images"][key], b["images"][key], rtol=0, atol=1e-5)
    assert a["reconstruction"]["psnr_db"] == pytest.approx(b["reconstruction"]["psnr_db"], abs=1e-3)
    # re-segmentations may flip a near-tied pixel between batchings (float rounding), no more
    assert a["edits"]["removal"] == pytest.approx(b["edits"]["removal"], abs=0.02)
    assert a["protocol"]["num_images"] == 4 and a["protocol"]["num_inference_steps"] == 2
    assert a["distances"]["comparable_with_paper_fid"] is False
    with pytest.raises(ValueError, match="more than the dataset's 12 images"):
        evaluate_generation(tiny_model, tiny_images, library, GenerationProtocol(num_images=13))
