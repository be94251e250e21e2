"""The statistics columns of `pass` (migration 0041): per channel, the number of its values in the
pass that count (0: none), their mean, minimum and maximum, and for logarithmic channels (noise)
the energy mean (edge.units.energy_mean). NULL where the count is 0.

Plain float8 and integer columns, written and read as they are: the jsonb they replace cost the
ingest a conversion to and from numeric for every number of every pass it wrote or extended.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from edge.units import CHANNELS


@dataclass(frozen=True, slots=True)
class StatColumns:
    """The column names of one channel's statistics (`stat_columns` names them)."""

    channel: str
    n: str
    mean: str
    min: str
    max: str
    energy: str | None  # logarithmic channels only

    def names(self) -> tuple[str, ...]:
        return (self.n, self.mean, self.min, self.max) + ((self.energy,) if self.energy else ())

    def select(self, alias: str = "") -> sql.Composed:
        """n, mean, min, max, energy mean (NULL for a channel without one), as SQL."""
        energy = self._column(alias, self.energy) if self.energy else sql.SQL("NULL::float8")
        parts = [self._column(alias, name) for name in (self.n, self.mean, self.min, self.max)]
        return sql.SQL(", ").join([*parts, energy])

    def count(self, alias: str = "") -> sql.Identifier:
        """The number of the channel's values in a pass that count."""
        return self._column(alias, self.n)

    def value(self, alias: str = "") -> sql.Composable:
        """The channel's value of a pass: its energy mean where it has one, else its mean."""
        if self.energy:
            return sql.SQL("coalesce({}, {})").format(
                self._column(alias, self.energy), self._column(alias, self.mean)
            )
        return self._column(alias, self.mean)

    def counted(self, alias: str = "") -> sql.Composed:
        """True where the pass holds a value of the channel that counts."""
        return sql.SQL("{} > 0").format(self.count(alias))

    @staticmethod
    def _column(alias: str, name: str) -> sql.Identifier:
        return sql.Identifier(alias, name) if alias else sql.Identifier(name)


def stat_columns(channel: str) -> StatColumns:
    """The columns of `channel` (a name from `edge.units.CHANNELS`; KeyError otherwise)."""
    c = channel
    energy = f"{c}_energy" if CHANNELS[c].energy_mean else None
    return StatColumns(c, f"{c}_n", f"{c}_mean", f"{c}_min", f"{c}_max", energy)


STATS = tuple(stat_columns(c) for c in CHANNELS)
STAT_COLUMN_NAMES = tuple(name for s in STATS for name in s.names())
