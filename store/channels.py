"""Channel names as they reach the store's statements."""

from __future__ import annotations

from edge.units import CHANNELS, ChannelSpec
from store.conditions import QueryError

__all__ = ["channel_spec"]


def channel_spec(channel: str) -> ChannelSpec:
    """The channel's spec; the only way a channel name reaches a statement (as a column name, and
    only once it is found in `edge.units.CHANNELS`). Raises `QueryError` naming `channel`."""
    spec = CHANNELS.get(channel)
    if spec is None:
        raise QueryError("channel", f"unknown channel {channel!r}; known: {', '.join(CHANNELS)}")
    return spec
