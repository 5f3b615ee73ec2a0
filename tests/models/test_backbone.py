import pytest
import torch
from diffusers import UNet2DModel

from lsd.models.backbone import CNNBackbone

from ..release_fixture import TINY_BACKBONE
from ._roundtrip import assert_round_trip


def make():
    torch.manual_seed(0)
    return CNNBackbone(**TINY_BACKBONE, input_resolution=32, input_channels=3)


def test_is_strided_conv_then_unet_at_timestep_zero():
    backbone = make()
    assert backbone.downscale_cnn.stride == (4, 4) and backbone.downscale_cnn.kernel_size == (4, 4)
    plain = UNet2DModel(**TINY_BACKBONE)
    plain.load_state_dict({k: v for k, v in backbone.state_dict().items() if not k.startswith("downscale_cnn.")})
    pixels = torch.rand(2, 3, 32, 32) * 2 - 1
    expected = plain(backbone.downscale_cnn(pixels), 0).sample
    out = backbone(pixels)
    assert out.shape == (2, 24, 8, 8)
    torch.testing.assert_close(out, expected)
    # the timestep matters to a UNet2DModel: t=0 is what the release uses
    assert not torch.allclose(plain(backbone.downscale_cnn(pixels), 500).sample, expected)


def test_time_axis_is_per_frame():
    backbone = make()
    video = torch.rand(2, 3, 3, 32, 32)
    out = backbone(video)
    assert out.shape == (2, 3, 24, 8, 8)
    torch.testing.assert_close(out[:, 1], backbone(video[:, 1]))


def test_bad_shapes_and_configs():
    backbone = make()
    with pytest.raises(ValueError, match=r"\(B, \[T,\] 3, 32, 32\)"):
        backbone(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match="multiple"):
        CNNBackbone(**{**TINY_BACKBONE, "sample_size": 12}, input_resolution=32)


def test_save_load_round_trip_is_exact(tmp_path):
    pixels = torch.rand(1, 3, 32, 32)
    loaded = assert_round_trip(make(), tmp_path, lambda m: m(pixels))
    assert type(loaded) is CNNBackbone
    assert loaded.config.input_resolution == 32 and loaded.config.block_out_channels == [16, 32]
