"""`GET /v1/pollutants`: the measured channels, their canonical units and labels."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from api.auth import reader
from api.envelope import Envelope, Meta
from api.errors import PROBLEM_RESPONSES
from api.scopes import visibility
from edge.units import CHANNELS, ChannelSpec
from hotspots.analysis.standards import colour_scale
from hotspots.floors import HOTSPOT_FLOORS

router = APIRouter(
    prefix="/v1", tags=["pollutants"], responses=PROBLEM_RESPONSES, dependencies=[Depends(reader)]
)


class ScaleStepOut(BaseModel):
    upper: float | None = Field(description="Values up to this (canonical unit); null: no end.")
    category: str = Field(description="HJ 633 category, or the GB 3096 class for noise.")
    colour: str = Field(description="#rrggbb, HJ 633's colour of the category.")


class PollutantOut(BaseModel):
    name: str
    unit: str = Field(description="Canonical unit: every stored value of the channel is in it.")
    label: str
    label_zh: str
    energy_mean: bool = Field(description="Logarithmic: averaged as an energy mean.")
    hotspots: bool = Field(description="Whether /v1/hotspots accepts it.")
    hotspot_floor: float | None = Field(description="Default absolute hotspot floor.")
    scale: list[ScaleStepOut] | None = Field(
        description="Indicative colour scale for maps (HJ 633 categories; GB 3096 day limits "
        "for noise); null without a national standard."
    )


def pollutant_out(spec: ChannelSpec) -> PollutantOut:
    return PollutantOut(
        name=spec.name,
        unit=spec.unit,
        label=spec.label,
        label_zh=spec.label_zh,
        energy_mean=spec.energy_mean,
        hotspots=spec.name in HOTSPOT_FLOORS,
        hotspot_floor=HOTSPOT_FLOORS.get(spec.name),
        scale=None
        if (steps := colour_scale(spec.name)) is None
        else [
            ScaleStepOut(
                upper=step.upper,
                category=step.category,
                colour="#{:02x}{:02x}{:02x}".format(*step.colour),
            )
            for step in steps
        ],
    )


@router.get(
    "/pollutants", summary="Channels and their units", openapi_extra=visibility("deployment")
)
def list_pollutants() -> Envelope[Meta, PollutantOut]:
    results = [pollutant_out(spec) for spec in CHANNELS.values()]
    return Envelope[Meta, PollutantOut](meta=Meta(found=len(results)), results=results)
