"""Typed dataclass configs from YAML, with `--set a.b=value` overrides.

A config class is a (nested) dataclass. Field types drive parsing and checking:
int, float, bool, str, `Literal[...]` (the allowed values), `X | None`, and
`list[X]`. Extra range checks live in a dataclass's `validate()` method, which
raises `ConfigError` naming the dotted key.
"""

from __future__ import annotations

import dataclasses
import re
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A user-facing config mistake: names the key, the value and what is allowed."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config error at '{key}': {message}")


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if origin is list:
        return f"a list of {_describe(get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp` and return it in that type."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping of {tp.__name__} fields, got {value!r}")
        return _build(tp, value, key)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"{value!r} is not allowed; allowed values: {', '.join(map(repr, allowed))}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(key, f"null is not allowed; expected {_describe(tp)}")
        for arg in args:
            if arg is type(None):
                continue
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                # a mapping can only mean that section: its own error, naming the bad field,
                # says more than "is not X or null"
                return _coerce(key, value, arg)
            try:
                return _coerce(key, value, arg)
            except ConfigError:
                continue
        raise ConfigError(key, f"{value!r} is not {_describe(tp)}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {value!r}")
        (item_tp,) = get_args(tp)
        return [_coerce(f"{key}[{i}]", v, item_tp) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {value!r}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, f"expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(key, f"expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"expected a string, got {value!r}")
        return value
    if tp is Any:
        return value
    raise TypeError(f"unsupported config field type {tp!r} at {key}")


def _build(cls: type[T], data: dict[str, Any], prefix: str = "") -> T:
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in data:
        if k not in fields:
            where = f"{prefix}.{k}" if prefix else k
            raise ConfigError(where, f"unknown key; allowed keys here: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name in data:
            kwargs[name] = _coerce(key, data[name], hints[name])
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(key, f"missing required key ({_describe(hints[name])})")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ConfigError as err:
            if prefix and not err.key.startswith(prefix):
                raise ConfigError(f"{prefix}.{err.key}", str(err).split(": ", 1)[1]) from None
            raise
    return obj


def parse_override(item: str) -> tuple[list[str | int], Any]:
    """`a.b=value` -> (['a', 'b'], value), the value parsed as YAML (so 3 is int, true is bool).
    List items are addressed as `datasets[0].limit` (or Hydra's `datasets.0.limit`)."""
    if "=" not in item:
        raise ConfigError(item, "an override must look like key.path=value")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(item, "an override needs a key before '='")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    path: list[str | int] = []
    for part in key.split("."):
        m = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])*)", part)
        if m is None or (not m.group(1) and not m.group(2)):
            raise ConfigError(key, f"cannot read the key part '{part}'; use a.b=value or a[0].b=value")
        if m.group(1):
            path.append(int(m.group(1)) if m.group(1).isdigit() else m.group(1))
        path += [int(i) for i in re.findall(r"\[(\d+)\]", m.group(2))]
    return path, value


def _key(path: list[str | int]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    data = _deepcopy(data)
    for item in overrides:
        path, value = parse_override(item)
        node: Any = data
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if isinstance(part, int):
                if not isinstance(node, list):
                    raise ConfigError(_key(path[: i + 1]), f"'{_key(path[:i])}' is not a list")
                if not 0 <= part < len(node):
                    raise ConfigError(_key(path[: i + 1]),
                                      f"index out of range: '{_key(path[:i])}' has {len(node)} items")
                if last:
                    node[part] = value
                else:
                    node = node[part]
                continue
            if not isinstance(node, dict):
                raise ConfigError(_key(path[: i + 1]), f"'{_key(path[:i])}' is not a section")
            if last:
                node[part] = value
                break
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            node = child
    return data


def _deepcopy(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: _deepcopy(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_deepcopy(v) for v in data]
    return data


def from_dict(cls: type[T], data: dict[str, Any], overrides: list[str] | None = None) -> T:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("<root>", f"expected a mapping at the top level, got {type(data).__name__}")
    return _build(cls, apply_overrides(data, overrides or []))


def config_path(path: str | Path) -> Path:
    """`path` as given when it exists (relative to the working directory, as from a clone);
    else `configs/<job>/<name>.yaml` from the configs shipped inside the installed package, so
    the documented `--config configs/spry/laptop.yaml` also works for a wheel install run from
    any directory."""
    p = Path(path)
    if p.is_file() or p.is_absolute() or not p.parts or p.parts[0] != "configs":
        return p
    import configs

    shipped = Path(configs.__file__).resolve().parent.joinpath(*p.parts[1:])
    return shipped if shipped.is_file() else p


def load(cls: type[T], path: str | Path | None, overrides: list[str] | None = None) -> T:
    """Load `cls` from a YAML file (or defaults if `path` is None) plus overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = config_path(path)
        if not p.is_file():
            raise ConfigError("--config", f"file not found: {p}")
        try:
            data = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError("--config", f"{p} is not valid YAML: {err}") from None
    return from_dict(cls, data, overrides)


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: Any) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def require(condition: bool, key: str, message: str) -> None:
    """Raise ConfigError(key, message) unless condition holds: the one-line check in validate()."""
    if not condition:
        raise ConfigError(key, message)


__all__ = [
    "ConfigError",
    "apply_overrides",
    "from_dict",
    "load",
    "parse_override",
    "require",
    "to_dict",
    "to_yaml",
]
