"""Watchdogs: one concern per module, one interface for all, as node_exporter's collectors.

Each module of this package defines a Watchdog subclass and decorates it with @register. A
watchdog declares
- `name`: its label value in sluice_watchdog_success{watchdog} and its key in status.json;
- `reading_type`: the dataclass its check() returns (status.json is read back into it);
- `families`: every metric family it exports (each listed in monitoring/METRICS.md);
and implements
- `interval(cfg)`: seconds between checks, or None while the config turns it off;
- `check(ctx)`: one typed reading (raising is a failed check);
- `samples(reading)`: the metric samples of a reading;
- `describe(reading)`: the lines `sluice status` prints for it.

The supervisor runs every registered watchdog through run(): it times the check, and a check
that raises gives success 0 and *no* reading, so /metrics and `sluice status` never show the
previous reading as if it were fresh. Adding a watchdog touches its own module and METRICS.md.
"""

from __future__ import annotations

import importlib
import logging
import math
import pkgutil
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from time import monotonic, perf_counter
from time import time as wall_clock
from typing import Any, ClassVar, Generic, Literal, TypeVar

from appliance.config import Config
from appliance.journal import Journal

# (No `import time` here: the submodule time.py becomes this package's attribute `time`.)

log = logging.getLogger("sluice.watchdogs")

R = TypeVar("R")


@dataclass(frozen=True)
class Family:
    """A metric family a watchdog exports (counters named without _total, as prometheus-client)."""

    name: str
    kind: Literal["gauge", "counter"]
    doc: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sample:
    family: str
    labels: tuple[str, ...]
    value: float


@dataclass
class Context:
    """What a check may use besides its own state: the config, the journal, the clock, and what
    the rest of the supervisor learnt since the last check."""

    cfg: Config
    journal: Journal | None = None
    monotonic: float = field(default_factory=monotonic)
    retention_freed_bytes: int = 0


class Watchdog(ABC, Generic[R]):
    name: ClassVar[str]
    reading_type: ClassVar[type]
    families: ClassVar[tuple[Family, ...]]

    def __init__(self, cfg: Config) -> None:
        self.reconfigure(cfg)

    def reconfigure(self, cfg: Config) -> None:  # noqa: B027 (optional hook: a new config on SIGHUP)
        """Take the values of a reloaded config that the watchdog keeps."""

    @abstractmethod
    def interval(self, cfg: Config) -> float | None: ...

    @abstractmethod
    def check(self, ctx: Context) -> R: ...

    @classmethod
    @abstractmethod
    def samples(cls, reading: R) -> Iterable[Sample]: ...

    @classmethod
    @abstractmethod
    def describe(cls, reading: R) -> list[str]: ...


REGISTRY: dict[str, type[Watchdog[Any]]] = {}


def register(cls: type[Watchdog[Any]]) -> type[Watchdog[Any]]:
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two watchdogs named {cls.name}")
    REGISTRY[cls.name] = cls
    return cls


def load_all() -> dict[str, type[Watchdog[Any]]]:
    """Import every module of this package (each registers its watchdogs); the registry."""
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
    return REGISTRY


@dataclass
class WatchdogRun:
    """The last run of one watchdog: its reading, or None when the check failed."""

    success: bool
    duration_seconds: float
    reading: Any = None
    error: str | None = None
    ts: float = 0.0


def run(watchdog: Watchdog[Any], ctx: Context) -> WatchdogRun:
    started = perf_counter()
    try:
        reading = watchdog.check(ctx)
    except Exception as exc:  # noqa: BLE001 (boundary: a watchdog never takes the capture down)
        return WatchdogRun(False, perf_counter() - started, None, f"{exc.__class__.__name__}: {exc}",
                           wall_clock())
    return WatchdogRun(True, perf_counter() - started, reading, None, wall_clock())


# -- typed values back from JSON (status.json) ---------------------------------------------------


def to_json(value: Any) -> Any:
    """A dataclass tree as JSON values; a non-finite float becomes null (JSON has no infinity)."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def from_json(cls: Any, value: Any) -> Any:
    """value (parsed JSON) as an instance of type cls, checked all the way down; TypeError or
    ValueError for anything that does not fit. A null float reads back as +Inf (see to_json)."""
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return from_json(arg, value)
            except (TypeError, ValueError) as exc:
                errors.append(str(exc))
        raise TypeError(f"{value!r:.40} fits none of {cls}")
    if origin is list:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        return [from_json(args[0], v) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return {from_json(args[0], k): from_json(args[1], v) for k, v in value.items()}
    if origin is tuple:
        if not isinstance(value, list) or len(value) != len(args):
            raise TypeError("expected a list of fixed length")
        return tuple(from_json(a, v) for a, v in zip(args, value, strict=True))
    if cls is Any:
        return value
    if is_dataclass(cls):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object for {cls.__name__}, got {type(value).__name__}")
        hints = typing.get_type_hints(cls)
        kwargs = {}
        for f in fields(cls):
            if f.name in value:
                kwargs[f.name] = from_json(hints[f.name], value[f.name])
            elif not f.init:
                continue
        return cls(**kwargs)
    if cls is float:
        if value is None:
            return math.inf
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"expected a number, got {value!r:.40}")
        return float(value)
    if cls is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"expected an integer, got {value!r:.40}")
        return value
    if cls is bool or cls is str:
        if not isinstance(value, cls):
            raise TypeError(f"expected {cls.__name__}, got {value!r:.40}")
        return value
    if cls is type(None):
        if value is not None:
            raise TypeError("expected null")
        return None
    raise TypeError(f"cannot read {cls} from JSON")
