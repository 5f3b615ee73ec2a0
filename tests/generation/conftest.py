import pytest
import torch


class TinyImages:
    """A dataset of random 32 px images in [-1, 1] (items as the labelled readers give them)."""

    def __init__(self, count: int = 12, seed: int = 0) -> None:
        self.pixels = torch.rand(count, 3, 32, 32, generator=torch.Generator().manual_seed(seed)) * 2 - 1

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> dict:
        return {"pixel_values": self.pixels[index]}


@pytest.fixture(scope="module")
def tiny_model():
    from lsd.configs import build_model

    torch.manual_seed(0)
    return build_model("tiny").eval()


@pytest.fixture
def tiny_images():
    return TinyImages()
