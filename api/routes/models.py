"""GET /v1/models: the model catalogue this API admits jobs against."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from visionq.api.deps import CallerDep, ResourcesDep
from visionq.api.openapi import error_responses
from visionq.vision.costing import today
from visionq.vision.model_rows import ModelRow, model_rows

router = APIRouter(prefix="/v1", tags=["models"])


class ModelList(BaseModel):
    as_of: str = Field(description="The catalogue's date: when its facts were checked.")
    aliases: dict[str, str] = Field(description="Alias -> the model a job naming it is pinned to.")
    models: list[ModelRow]


@router.get(
    "/models", response_model=ModelList, responses=error_responses(401, 503), summary="List models"
)
def list_models(caller: CallerDep, resources: ResourcesDep) -> ModelList:
    """Every model the catalogue knows: status, replacement, prices today, thinking, tasks."""
    del caller  # authenticated like every route; the catalogue is the same for all tenants
    catalogue = resources.costs.catalogue
    return ModelList(
        as_of=catalogue.as_of.isoformat(),
        aliases=dict(catalogue.aliases),
        models=model_rows(catalogue, today(), resources.settings.default_model or None),
    )
