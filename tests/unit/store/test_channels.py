"""Channel names reach a statement only through the known list."""

from __future__ import annotations

import pytest

from store.channels import channel_spec
from store.conditions import QueryError


def test_channels_come_only_from_the_known_list() -> None:
    assert channel_spec("pm25").unit == "ug/m3"
    with pytest.raises(QueryError) as caught:
        channel_spec('pm25"; DROP TABLE reading; --')
    assert caught.value.subject == "channel"
