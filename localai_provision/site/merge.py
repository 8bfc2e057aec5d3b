"""How a host's settings are merged: defaults < each of its groups, in order < the host."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from localai_provision.site.model import canonical_package_name


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key, `models` merge by id, everything else is replaced."""
    result = dict(base)
    for key, value in over.items():
        if key == "packages" and isinstance(value, Mapping):
            # `MLX_LM` and `mlx-lm` are one distribution: compare them by canonical name, or
            # a differently spelt pin would escape the precedence order.
            value = {canonical_package_name(str(k)): v for k, v in value.items()}
        if key == "models" and isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = merge_models(result[key], value)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = deep_merge(result[key], value)
        else:
            result[key] = value
    return result


def _model_id(entry: Any) -> str:
    return entry if isinstance(entry, str) else str(entry["id"])


def merge_models(base: list[Any], over: list[Any]) -> list[Any]:
    merged: dict[str, Any] = {_model_id(m): m for m in base}
    for entry in over:
        merged[_model_id(entry)] = entry  # the later entry wins, keeping the first's place
    return list(merged.values())


def merge_settings(data: dict[str, Any], host_name: str) -> dict[str, Any]:
    """defaults < each of the host's groups, in the order listed < the host itself."""
    host = data["hosts"][host_name] or {}
    merged = deep_merge({}, data.get("defaults") or {})
    groups = data.get("groups") or {}
    for group in host.get("groups", []):
        if isinstance(groups.get(group), Mapping):
            merged = deep_merge(merged, groups[group])
    own = {k: v for k, v in host.items() if k not in ("address", "groups")}
    return deep_merge(merged, own)
