"""Strict dataclass configs: from dicts and YAML files, named presets, unknown keys are an error."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration that names unknown keys, presets or values."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass type inside ``tp`` (``X``, ``X | None``, ``Optional[X]``), else None."""
    if dataclasses.is_dataclass(tp):
        return tp
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            if dataclasses.is_dataclass(arg):
                return arg
    return None


def _tuple_in(tp: Any) -> bool:
    """True for ``tuple[...]`` and for unions containing it (``tuple[int, ...] | None``)."""
    if typing.get_origin(tp) is tuple:
        return True
    return any(typing.get_origin(arg) is tuple for arg in typing.get_args(tp))


def _convert(value: Any, tp: Any) -> Any:
    inner = _dataclass_in(tp)
    if inner is not None and isinstance(value, Mapping):
        return from_dict(inner, value)
    if isinstance(value, list) and _tuple_in(tp):
        return tuple(value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass ``cls`` from ``data``; nested dataclasses recurse; unknown keys raise ConfigError."""
    types_by_name = _field_types(cls)
    unknown = sorted(set(data) - set(types_by_name))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}; allowed: {sorted(types_by_name)}")
    return cls(**{k: _convert(v, types_by_name[k]) for k, v in data.items()})


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON/YAML-ready dict of a dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def load_yaml(path: str | Path, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Read a YAML run config into ``cls`` (strict), applying dotted ``overrides`` (``{"train.epochs": 3}``)."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return from_dict(cls, data)


def save_yaml(obj: Any, path: str | Path) -> None:
    """Write a dataclass as YAML (the resolved config saved next to outputs)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(to_dict(obj), sort_keys=False))


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["train.epochs=3", "model.preset=tiny"]`` → ``{"train.epochs": 3, "model.preset": "tiny"}`` (YAML-typed)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


class PresetConfig:
    """Mixin for model config dataclasses with named presets.

    Subclasses define ``PRESETS: ClassVar[dict[str, dict]]`` (overrides of the dataclass defaults, which are
    the paper sizes) and ``model_type: ClassVar[str]``.
    """

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    model_type: ClassVar[str] = ""

    @classmethod
    def from_preset(cls, name: str, **overrides: Any):
        if name not in cls.PRESETS:
            raise ConfigError(f"{cls.__name__}: unknown preset {name!r}; allowed: {sorted(cls.PRESETS)}")
        return from_dict(cls, {**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
