"""What the package reads of its own: the JSON schemas (in YAML) of the experiment registry and of the model-zoo
metafiles. Shipped as package data, so ``apro`` works from an installed wheel outside the checkout."""
from __future__ import annotations

from importlib import resources
from typing import Any


def schema(name: str) -> Any:
    """The parsed schema ``<name>.schema.yaml`` (``registry`` or ``metafile``)."""
    import yaml

    return yaml.safe_load(resources.files(__name__).joinpath(f"{name}.schema.yaml").read_text(encoding="utf-8"))


def schema_name(name: str) -> str:
    """How error messages name the schema file."""
    return f"apro/resources/{name}.schema.yaml"
