"""``tf.train.Example`` parsing with protobuf alone (no TensorFlow).

The message classes are built at import time from a descriptor equivalent to TensorFlow's
``tensorflow/core/example/{example,feature}.proto`` (same field numbers and types, so the same
wire format)::

    message BytesList { repeated bytes value = 1; }
    message FloatList { repeated float value = 1 [packed = true]; }
    message Int64List { repeated int64 value = 1 [packed = true]; }
    message Feature { oneof kind { BytesList bytes_list = 1; FloatList float_list = 2; Int64List int64_list = 3; } }
    message Features { map<string, Feature> feature = 1; }
    message Example { Features features = 1; }
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

_F = descriptor_pb2.FieldDescriptorProto


def _add_field(message, name: str, number: int, kind: int, label: int, type_name: str = "", oneof: int | None = None):
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = type_name
    if oneof is not None:
        field.oneof_index = oneof
    return field


def _example_class() -> type:
    proto = descriptor_pb2.FileDescriptorProto(name="lsd_tf_example.proto", package="tensorflow", syntax="proto3")
    for name, kind in (("BytesList", _F.TYPE_BYTES), ("FloatList", _F.TYPE_FLOAT), ("Int64List", _F.TYPE_INT64)):
        field = _add_field(proto.message_type.add(name=name), "value", 1, kind, _F.LABEL_REPEATED)
        if kind != _F.TYPE_BYTES:
            field.options.packed = True
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, name in enumerate(("bytes_list", "float_list", "int64_list"), start=1):
        type_name = (
            ".tensorflow." + {"bytes_list": "BytesList", "float_list": "FloatList", "int64_list": "Int64List"}[name]
        )
        _add_field(feature, name, number, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, type_name, oneof=0)
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    _add_field(entry, "key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL)
    _add_field(entry, "value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Feature")
    _add_field(features, "feature", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED, ".tensorflow.Features.FeatureEntry")
    example = proto.message_type.add(name="Example")
    _add_field(example, "features", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


Example = _example_class()


def parse_example(data: bytes, where: str) -> Mapping[str, Any]:
    """The ``feature`` map of a serialized Example (key -> ``Feature`` message); ``where`` names
    the record in errors."""
    message = Example()
    try:
        message.ParseFromString(data)
    except DecodeError as err:
        raise ValueError(f"{where}: not a tf.train.Example ({err})") from err
    return message.features.feature


def feature_values(features: Mapping[str, Any], key: str, where: str) -> list[bytes] | np.ndarray:
    """The values stored under ``key``: a list of bytes, or a float32 / int64 array."""
    if key not in features:
        raise ValueError(f"{where}: the record has no {key!r} entry")
    feature = features[key]
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        return list(feature.bytes_list.value)
    if kind == "float_list":
        return np.asarray(feature.float_list.value, dtype=np.float32)
    if kind == "int64_list":
        return np.asarray(feature.int64_list.value, dtype=np.int64)
    return np.zeros(0, dtype=np.float32)  # an empty Feature: no values of any kind
