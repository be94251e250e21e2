"""The API's one FeatureCollection: the model the routes subclass and the streamed envelope."""

from __future__ import annotations

import json
from collections.abc import Iterator

import orjson
from pydantic import BaseModel

from api.geojson import FeatureCollection, stream_collection


class _Meta(BaseModel):
    found: int


class _Feature(BaseModel):
    type: str = "Feature"
    id: int


def _streamed(chunks: list[list[bytes]]) -> bytes:
    return b"".join(stream_collection(chunks))


def test_a_streamed_collection_is_the_model_without_its_meta() -> None:
    features = [_Feature(id=i) for i in range(5)]
    model = FeatureCollection[_Meta, _Feature](meta=_Meta(found=5), features=features)
    expected = model.model_dump()
    del expected["meta"]
    encoded = [orjson.dumps(f.model_dump()) for f in features]
    # Pages of any size, empty ones too, join into one valid document.
    streamed = _streamed([encoded[:2], [], encoded[2:3], encoded[3:]])
    assert json.loads(streamed) == expected


def test_an_empty_stream_is_an_empty_collection() -> None:
    assert json.loads(_streamed([])) == {"type": "FeatureCollection", "features": []}
    assert json.loads(_streamed([[], []])) == {"type": "FeatureCollection", "features": []}


def test_the_opening_comes_before_the_first_page_is_read() -> None:
    def pages() -> Iterator[list[bytes]]:
        raise AssertionError("read too early")
        yield []  # pragma: no cover

    stream = stream_collection(pages())
    assert next(stream).startswith(b'{"type":"FeatureCollection"')
