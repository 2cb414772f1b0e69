"""Strict dataclass configs: from dicts and YAML files, named presets, unknown keys are an error."""

from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import yaml

from .errors import CiderError

T = TypeVar("T")
_SCALARS = (bool, int, float, str)


class ConfigError(CiderError, ValueError):
    """A configuration that names unknown keys, presets or values, or a config file that cannot be read."""


def did_you_mean(word: str, choices: Any) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices`` to a mistyped ``word``, else ``""``."""
    close = difflib.get_close_matches(word, [str(c) for c in choices], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


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


def _check_scalar(owner: str, value: Any, tp: Any) -> None:
    """ConfigError when a field typed ``int``/``float``/``str``/``bool`` (or ``X | None``) gets another type."""
    allowed = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    if value is None and type(None) in allowed:
        return
    if not allowed or not all(a in _SCALARS for a in allowed if a is not type(None)):
        return
    if float in allowed and isinstance(value, int) and not isinstance(value, bool):
        return
    if any(type(value) is a for a in allowed):
        return
    names = " or ".join(a.__name__ for a in allowed)
    raise ConfigError(f"{owner} must be {names}, got {value!r}")


def _convert(owner: str, value: Any, tp: Any) -> Any:
    _check_scalar(owner, value, tp)
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
    if not isinstance(data, Mapping):
        raise ConfigError(f"{cls.__name__}: expected a mapping of keys to values, got {data!r}")
    unknown = sorted(set(data) - set(types_by_name))
    if unknown:
        raise ConfigError(f"{cls.__name__}: unknown keys {unknown}{did_you_mean(unknown[0], types_by_name)}; "
                          f"allowed: {sorted(types_by_name)}")
    values = {k: _convert(f"{cls.__name__}.{k}", v, types_by_name[k]) for k, v in data.items()}
    try:
        return cls(**values)
    except TypeError as error:  # a required field without a default
        raise ConfigError(f"{cls.__name__}: {error}") from error


def to_dict(obj: Any) -> dict[str, Any]:
    """JSON/YAML-ready dict of a dataclass (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(obj), default=str))


def load_yaml(path: str | Path, cls: type[T], overrides: Mapping[str, Any] | None = None) -> T:
    """Read a YAML run config into ``cls`` (strict), applying dotted ``overrides`` (``{"train.epochs": 3}``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} not found (the project's run configs are in configs/, "
                          "e.g. configs/photometry.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}; fix the file (a YAML mapping of keys)") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a YAML mapping of keys to values, got {type(data).__name__}")
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {dotted}: {key} is not a section of the config")
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
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise ConfigError(f"override {item!r}: the value is not valid YAML ({error.__class__.__name__}); "
                              "quote strings and write lists as [a, b]") from error
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
            raise ConfigError(f"{cls.__name__}: unknown preset {name!r}{did_you_mean(name, cls.PRESETS)}; "
                              f"allowed: {sorted(cls.PRESETS)}")
        return from_dict(cls, {**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]):
        return from_dict(cls, data)

    def to_dict(self) -> dict[str, Any]:
        return to_dict(self)
