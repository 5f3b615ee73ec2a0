"""MOVi's TFDS release -> the LSD release's dump layout, without TensorFlow (``lsd data prepare``).

- :mod:`.tfrecord`: TFRecord framing, CRC32C-checked;
- :mod:`.example`: ``tf.train.Example`` parsing with protobuf;
- :mod:`.features`: the MOVi feature spec from ``features.json`` and record decoding;
- :mod:`.order`: the order ``tfds.load`` yields records in;
- :mod:`.dump`: one video written as the release's dump script writes it;
- :mod:`.source`: a local folder or HTTPS (retries, resume);
- :mod:`.convert`: the whole run (resumable); :mod:`.command`: the CLI entry.

Imports nothing above the data layer. docs/datasets.md describes the layout rules.
"""

from lsd.data.prepare.convert import DEFAULT_SPLITS, TFDS_NAMES, SplitResult, prepare_movi

__all__ = ["DEFAULT_SPLITS", "TFDS_NAMES", "SplitResult", "prepare_movi"]
