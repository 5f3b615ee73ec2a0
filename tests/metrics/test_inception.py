import pytest
import torch
from safetensors.torch import save_file

from lsd.metrics import FID_WEIGHTS_FILENAME, FID_WEIGHTS_URL, InceptionFeatureExtractor

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/metrics/conftest.py


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    net = InceptionFeatureExtractor()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that loading them is checked
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return net


def test_architecture_matches_the_fid_inception(model):
    state = model.state_dict()
    # torchvision's Inception3 (27,161,264 parameters) minus its AuxLogits head (3,326,696) and its
    # 1000-class fc (2,049,000): 21,785,568 parameters in 94 conv+BN units.
    assert sum(p.numel() for p in model.parameters()) == 21_785_568
    assert sum(k.endswith(".conv.weight") for k in state) == 94
    shapes = {
        "Conv2d_1a_3x3.conv.weight": (32, 3, 3, 3),
        "Conv2d_4a_3x3.bn.running_var": (192,),
        "Mixed_5b.branch_pool.conv.weight": (32, 192, 1, 1),
        "Mixed_6b.branch7x7_2.conv.weight": (128, 128, 1, 7),
        "Mixed_6e.branch7x7dbl_5.conv.weight": (192, 192, 1, 7),
        "Mixed_7a.branch3x3_2.conv.weight": (320, 192, 3, 3),
        "Mixed_7c.branch3x3dbl_3b.conv.weight": (384, 384, 3, 1),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    assert model.Conv2d_1a_3x3.bn.eps == 1e-3
    assert model.Mixed_7b.pool == "avg" and model.Mixed_7c.pool == "max"


def test_features_shape_and_resize(model):
    with torch.no_grad():
        small = InceptionFeatureExtractor(resize_input=False).eval()
        small.load_state_dict(model.state_dict())
        x = torch.rand(2, 3, 75, 75)  # the smallest input the network accepts
        feats = small(x)
        assert feats.shape == (2, 2048) and feats.dtype == torch.float32 and torch.isfinite(feats).all()
        assert (feats >= 0).all()  # pool3 averages ReLU outputs
        resized = model(torch.rand(1, 3, 32, 32))  # resized to 299 x 299 internally
        assert resized.shape == (1, 2048)
    with pytest.raises(ValueError, match=r"`images` must have shape \(B, 3, H, W\)"):
        model(torch.rand(1, 1, 75, 75))


def test_always_in_eval_mode(model):
    model.train()
    assert not model.training and not model.Mixed_5b.branch1x1.bn.training


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        InceptionFeatureExtractor.from_file(tmp_path / "nope.pth")
    assert FID_WEIGHTS_FILENAME in str(info.value) and FID_WEIGHTS_URL in str(info.value)
    with pytest.raises(FileNotFoundError, match=FID_WEIGHTS_FILENAME):  # a folder without the file
        InceptionFeatureExtractor.from_file(tmp_path)


@pytest.mark.parametrize("fmt", ["pth", "safetensors"])
def test_load_saved_state_dict(model, tmp_path, fmt):
    state = dict(model.state_dict())
    # the real file also carries the 1008-way classifier, which the extractor ignores
    state["fc.weight"] = torch.zeros(1008, 2048)
    state["fc.bias"] = torch.zeros(1008)
    if fmt == "pth":
        torch.save(state, tmp_path / FID_WEIGHTS_FILENAME)
        loaded = InceptionFeatureExtractor.from_file(tmp_path, resize_input=False)  # folder -> expected name
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "inception.safetensors"))
        loaded = InceptionFeatureExtractor.from_file(tmp_path / "inception.safetensors", resize_input=False)
    x = torch.rand(1, 3, 75, 75)
    with torch.no_grad():
        reference = InceptionFeatureExtractor(resize_input=False)
        reference.load_state_dict(model.state_dict())
        assert torch.equal(loaded(x), reference(x))


def test_wrong_state_dict_is_reported(tmp_path):
    state = {k: v for k, v in InceptionFeatureExtractor().state_dict().items() if not k.startswith("Mixed_7c.")}
    state["Mixed_8a.conv.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match=r"45 missing keys .* 1 unexpected"):  # Mixed_7c: 9 units x 5 tensors
        InceptionFeatureExtractor.from_file(tmp_path / "partial.pth")
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 5, 5)}, tmp_path / "shape.pth")
    with pytest.raises(ValueError, match="does not match the FID Inception-v3"):
        InceptionFeatureExtractor.from_file(tmp_path / "shape.pth")
