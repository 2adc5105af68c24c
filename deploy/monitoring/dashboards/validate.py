"""Strict validation of Grafana dashboard JSON through grafana-foundation-sdk's models.

The SDK's ``from_json`` is lenient: it drops keys it does not know, passes values
through unchecked, and keeps an unknown panel type's options, or the queries of an
unknown data source, as untyped bags. Loading alone proves little, so a dashboard is
valid here only when

1. it loads (``Dashboard.from_json``);
2. it survives the round trip unchanged: ``to_json`` gives back exactly the input, so
   no key was unknown to the models (a misspelt field, one of another schema version);
3. every value has the type its model declares, enums and literals included;
4. every panel's type is a panel plugin the SDK knows (so its options and field
   config were decoded by that plugin's models) and every query is a Prometheus one;
5. no expanded row holds panels: Grafana shows only a collapsed row's own panels
   (an expanded row's panels follow it in the dashboard's list);
6. every unit is one the SDK names (grafana_foundation_sdk.models.units).
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any

from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard, prometheus, units

# The panel plugins and data sources the SDK ships: without them from_json keeps every
# panel's options as a plain dict and every query as an UnknownDataquery.
register_default_plugins()

ROW = "row"
UNITS = frozenset(
    value
    for name, value in vars(units).items()
    if isinstance(value, str) and not name.startswith("_")
)


def validate(data: dict[str, Any]) -> list[str]:
    """Every problem of one dashboard, each with where it is (JSON keys, or the SDK
    model's attribute names for a type); [] when it is valid."""
    try:
        model = dashboard.Dashboard.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return [f"$: the SDK cannot load it: {exc!r}"]
    errors = _round_trip_differences(data, encode(model), "$")
    _check_model(model, "$", errors)
    _check_panels(model, errors)
    return errors


def encode(model: object) -> Any:
    """A model as plain JSON values, the way the SDK serialises it."""
    return json.loads(json.dumps(model, cls=JSONEncoder))


def _round_trip_differences(want: Any, got: Any, path: str) -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = [f"{path}.{key}: not in the SDK's model" for key in want.keys() - got.keys()]
        out += [f"{path}.{key}: added by the SDK" for key in got.keys() - want.keys()]
        for key in want.keys() & got.keys():
            out += _round_trip_differences(want[key], got[key], f"{path}.{key}")
        return out
    if isinstance(want, list) and isinstance(got, list) and len(want) == len(got):
        out = []
        for i, (w, g) in enumerate(zip(want, got, strict=True)):
            out += _round_trip_differences(w, g, f"{path}[{i}]")
        return out
    # Compared with their types: JSON's true is not 1.
    if type(want) is not type(got) or want != got:
        return [f"{path}: {want!r} comes back from the SDK as {got!r}"]
    return []


def _is_model(value: object) -> bool:
    return callable(getattr(value, "to_json", None)) and not isinstance(value, type)


def _check_model(model: object, path: str, errors: list[str]) -> None:
    hints = typing.get_type_hints(type(model).__init__)
    hints.pop("return", None)
    for name, hint in hints.items():
        _check_value(getattr(model, name), hint, f"{path}.{name}", errors)


def _check_value(value: object, hint: Any, path: str, errors: list[str]) -> None:
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        if _is_model(value):
            _check_model(value, path, errors)
    elif origin is typing.Union or origin is types.UnionType:
        _check_union(value, typing.get_args(hint), path, errors)
    elif origin is typing.Literal:
        if not any(type(value) is type(a) and value == a for a in typing.get_args(hint)):
            errors.append(f"{path}: {value!r} is not one of {typing.get_args(hint)}")
    elif origin is list:
        _check_list(value, typing.get_args(hint)[0], path, errors)
    elif origin is dict:
        _check_dict(value, typing.get_args(hint)[1], path, errors)
    elif isinstance(hint, type):
        _check_class(value, hint, path, errors)
    else:
        # A kind of hint this checker does not know passes nothing: a newer SDK
        # must be looked at, not trusted.
        errors.append(f"{path}: cannot check a value of type {hint!r}")


def _check_union(value: object, options: tuple[Any, ...], path: str, errors: list[str]) -> None:
    for option in options:
        found: list[str] = []
        _check_value(value, option, path, found)
        if not found:
            return
    # None fits no option: tell what is wrong inside the one it was meant for, if any.
    meant = [option for option in options if _fits_outside(value, option)]
    if meant:
        _check_value(value, meant[0], path, errors)
    else:
        errors.append(f"{path}: {value!r} is none of {options}")


def _fits_outside(value: object, hint: Any) -> bool:
    """Whether ``value`` is the kind of thing ``hint`` wants, its contents unchecked."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return True
    if origin is typing.Union or origin is types.UnionType:
        return any(_fits_outside(value, option) for option in typing.get_args(hint))
    if origin is typing.Literal:
        return any(type(value) is type(a) for a in typing.get_args(hint))
    if origin in (list, dict):
        return isinstance(value, origin)
    if not isinstance(hint, type):
        return False
    if issubclass(hint, enum.Enum):
        return any(type(value) is type(m.value) for m in hint)
    if hasattr(hint, "from_json"):
        return isinstance(value, hint | dict)
    if hint is float:
        return type(value) in (int, float)
    return type(value) is hint  # None, bool, int, str


def _check_list(value: object, item: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, list):
        errors.append(f"{path}: {value!r} is not a list")
        return
    for i, element in enumerate(value):
        _check_value(element, item, f"{path}[{i}]", errors)


def _check_dict(value: object, item: Any, path: str, errors: list[str]) -> None:
    if not isinstance(value, dict):
        errors.append(f"{path}: {value!r} is not an object")
        return
    for key, element in value.items():
        _check_value(element, item, f"{path}.{key}", errors)


def _check_class(value: object, hint: type, path: str, errors: list[str]) -> None:
    if hint is type(None):
        ok = value is None
    elif issubclass(hint, enum.Enum):
        ok = any(type(value) is type(m.value) and value == m.value for m in hint)
    elif hint is float:
        ok = type(value) in (int, float)
    elif hint in (bool, int, str):
        ok = type(value) is hint
    elif isinstance(value, dict) and hasattr(hint, "from_json"):
        # The SDK leaves some nested models as the dicts it read (a panel's links, its
        # transformations): decode them here, and check that round trip too.
        try:
            decoded = hint.from_json(value)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            errors.append(f"{path}: the SDK cannot load it as {hint.__name__}: {exc!r}")
            return
        errors += _round_trip_differences(value, encode(decoded), path)
        _check_model(decoded, path, errors)
        return
    else:
        ok = isinstance(value, hint)
        if ok and _is_model(value):
            _check_model(value, path, errors)
    if not ok:
        errors.append(f"{path}: {value!r} is not of type {hint.__name__}")


def _check_panels(model: dashboard.Dashboard, errors: list[str]) -> None:
    known = set(cogruntime.Runtime().panelcfg_variants) | {ROW}
    for i, panel in enumerate(model.panels or []):
        path = f"$.panels[{i}]"
        if isinstance(panel, dashboard.RowPanel):
            if not panel.collapsed and panel.panels:
                errors.append(f"{path}: an expanded row's own panels are never shown")
            for j, inner in enumerate(panel.panels or []):
                _check_panel(inner, f"{path}.panels[{j}]", known, errors)
        else:
            _check_panel(panel, path, known, errors)


def _check_panel(panel: dashboard.Panel, path: str, known: set[str], errors: list[str]) -> None:
    if panel.type_val not in known - {ROW}:
        errors.append(f"{path}.type: {panel.type_val!r} is not a panel plugin the SDK knows")
    for j, target in enumerate(panel.targets or []):
        if not isinstance(target, prometheus.Dataquery):
            errors.append(f"{path}.targets[{j}]: not a Prometheus query")
    for where, unit in _units(panel.field_config):
        if unit not in UNITS:
            errors.append(f"{path}.fieldConfig.{where}: unit {unit!r} is not one Grafana has")


def _units(config: dashboard.FieldConfigSource | None) -> list[tuple[str, object]]:
    """Every unit a panel sets: its default, and those of its overrides."""
    if config is None:
        return []
    found: list[tuple[str, object]] = []
    if config.defaults is not None and config.defaults.unit is not None:
        found.append(("defaults.unit", config.defaults.unit))
    for i, override in enumerate(config.overrides or []):
        for prop in override.properties or []:
            if prop.id_val == "unit":
                found.append((f"overrides[{i}]", prop.value))
    return found
