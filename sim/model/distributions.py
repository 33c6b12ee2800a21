"""Distributions for dwell times and order values.

Each distribution is a frozen object that knows its analytic mean and variance (the analytic
solver needs them), samples from a passed ``numpy.random.Generator``, and maps uniforms to
values through its quantile function, which lets the engine pre-draw uniforms in numpy blocks
and keep common random numbers between scenarios.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from sim.errors import ScenarioError, suggest

__all__ = [
    "Distribution",
    "Empirical",
    "Exponential",
    "Fixed",
    "Gamma",
    "Lognormal",
    "Weibull",
    "parse_distribution",
]


def _positive(value: float, name: str, family: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ScenarioError(
            f"{family}: {name} must be a positive number, got {value!r}",
            fix=f"give {name} > 0",
        )
    return value


def _non_negative(value: float, name: str, family: str) -> float:
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ScenarioError(
            f"{family}: {name} must be zero or more, got {value!r}", fix=f"give {name} >= 0"
        )
    return value


class Distribution:
    """Base of all distributions: a non-negative random quantity with known moments.

    Every subclass has ``mean`` and ``variance`` (analytic, floats) besides the methods below.
    """

    family: ClassVar[str] = ""
    mean: float
    variance: float

    def quantile(self, u: Any) -> np.ndarray:
        """The inverse distribution function at probabilities ``u`` (array or scalar)."""
        raise NotImplementedError

    def at(self, u: float) -> float:
        """The quantile at one probability ``u``, as a Python float: the number
        ``float(self.quantile(u))`` gives (families where it is cheaper say so)."""
        return float(self.quantile(u))

    def scaled(self, factor: float) -> Distribution:
        """The law of ``factor * X`` (an accelerated-failure-time scaling), in the same family."""
        raise NotImplementedError

    def spec(self) -> str:
        """The text form used in scenario files, e.g. ``exponential(mean=3)``."""
        raise NotImplementedError

    def sample(self, rng: np.random.Generator, size: int | tuple[int, ...] | None = None) -> Any:
        """Draw from the distribution with the given generator."""
        return self.quantile(rng.random(size))


def _num(x: float) -> str:
    """Shortest text that reads back to the same float."""
    return repr(float(x)).removesuffix(".0") if float(x).is_integer() else repr(float(x))


class Exponential(Distribution):
    """Exponential law, given by ``rate`` (per day) or ``mean`` (days): one or the other."""

    family: ClassVar[str] = "exponential"
    __slots__ = ("_given", "_mean")

    def __init__(self, rate: float | None = None, mean: float | None = None) -> None:
        if (rate is None) == (mean is None):
            raise ScenarioError(
                "exponential needs exactly one of rate or mean",
                fix="write exponential(mean=3) or exponential(rate=0.5)",
            )
        if rate is not None:
            self._given = ("rate", _positive(rate, "rate", self.family))
            self._mean = 1.0 / self._given[1]
        else:
            self._given = ("mean", _positive(mean, "mean", self.family))
            self._mean = self._given[1]

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_mean"):
            raise AttributeError("distributions are immutable")
        super().__setattr__(name, value)

    def __repr__(self) -> str:
        return f"Exponential({self._given[0]}={_num(self._given[1])})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Exponential) and other._mean == self._mean

    def __hash__(self) -> int:
        return hash((self.family, self._mean))

    def __reduce__(self):
        return (Exponential, (None, self._mean))

    @property
    def rate(self) -> float:
        """Events per day, 1 / mean."""
        return 1.0 / self._mean

    @property
    def mean(self) -> float:
        return self._mean

    @property
    def variance(self) -> float:
        return self._mean**2

    def quantile(self, u: Any) -> np.ndarray:
        return -self._mean * np.log1p(-np.asarray(u, dtype=float))

    def scaled(self, factor: float) -> Exponential:
        return Exponential(mean=self._mean * factor)

    def spec(self) -> str:
        return f"exponential({self._given[0]}={_num(self._given[1])})"


@dataclass(frozen=True)
class Gamma(Distribution):
    """Gamma law with ``shape`` k and ``mean`` (days); the coefficient of variation is 1/sqrt(k)."""

    family: ClassVar[str] = "gamma"
    shape: float
    mean: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive(self.shape, "shape", self.family))
        object.__setattr__(self, "mean", _positive(self.mean, "mean", self.family))

    @property
    def variance(self) -> float:
        return self.mean**2 / self.shape

    def quantile(self, u: Any) -> np.ndarray:
        from scipy import special  # imported where used: reading a scenario needs no scipy

        return special.gammaincinv(self.shape, np.asarray(u, dtype=float)) * (
            self.mean / self.shape
        )

    def scaled(self, factor: float) -> Gamma:
        return Gamma(shape=self.shape, mean=self.mean * factor)

    def spec(self) -> str:
        return f"gamma(shape={_num(self.shape)}, mean={_num(self.mean)})"


@dataclass(frozen=True)
class Lognormal(Distribution):
    """Lognormal law given by its ``mean`` and ``sigma``, the standard deviation of log X."""

    family: ClassVar[str] = "lognormal"
    mean: float
    sigma: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _positive(self.mean, "mean", self.family))
        object.__setattr__(self, "sigma", _non_negative(self.sigma, "sigma", self.family))

    @property
    def mu(self) -> float:
        """The mean of log X."""
        return math.log(self.mean) - 0.5 * self.sigma**2

    @property
    def variance(self) -> float:
        return math.expm1(self.sigma**2) * self.mean**2

    def quantile(self, u: Any) -> np.ndarray:
        from scipy import special

        return np.exp(self.mu + self.sigma * special.ndtri(np.asarray(u, dtype=float)))

    def scaled(self, factor: float) -> Lognormal:
        return Lognormal(mean=self.mean * factor, sigma=self.sigma)

    def spec(self) -> str:
        return f"lognormal(mean={_num(self.mean)}, sigma={_num(self.sigma)})"


@dataclass(frozen=True)
class Weibull(Distribution):
    """Weibull law with ``shape`` k and ``mean`` (days); k < 1 gives a long tail, k > 1 a peak."""

    family: ClassVar[str] = "weibull"
    shape: float
    mean: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _positive(self.shape, "shape", self.family))
        object.__setattr__(self, "mean", _positive(self.mean, "mean", self.family))

    @property
    def scale(self) -> float:
        """The Weibull scale parameter lambda, from the mean."""
        return self.mean / math.gamma(1.0 + 1.0 / self.shape)

    @property
    def variance(self) -> float:
        g2 = math.gamma(1.0 + 2.0 / self.shape)
        return self.scale**2 * g2 - self.mean**2

    def quantile(self, u: Any) -> np.ndarray:
        return self.scale * (-np.log1p(-np.asarray(u, dtype=float))) ** (1.0 / self.shape)

    def scaled(self, factor: float) -> Weibull:
        return Weibull(shape=self.shape, mean=self.mean * factor)

    def spec(self) -> str:
        return f"weibull(shape={_num(self.shape)}, mean={_num(self.mean)})"


@dataclass(frozen=True)
class Fixed(Distribution):
    """A fixed ``value`` (days, or money for order values); zero means no wait."""

    family: ClassVar[str] = "fixed"
    value: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", _non_negative(self.value, "value", self.family))

    @property
    def mean(self) -> float:
        return self.value

    @property
    def variance(self) -> float:
        return 0.0

    def quantile(self, u: Any) -> np.ndarray:
        return np.full(np.shape(u), self.value)

    def at(self, u: float) -> float:
        return self.value

    def scaled(self, factor: float) -> Fixed:
        return Fixed(self.value * factor)

    def spec(self) -> str:
        return f"fixed({_num(self.value)})"


@dataclass(frozen=True)
class Empirical(Distribution):
    """Resampling of observed values (for example dwell times taken from an event log)."""

    family: ClassVar[str] = "empirical"
    samples: tuple[float, ...]

    def __post_init__(self) -> None:
        values = tuple(float(x) for x in self.samples)
        if not values:
            raise ScenarioError("empirical needs at least one value", fix="list observed values")
        for x in values:
            _non_negative(x, "every value", self.family)
        object.__setattr__(self, "samples", tuple(sorted(values)))

    @property
    def mean(self) -> float:
        return float(np.mean(self.samples))

    @property
    def variance(self) -> float:
        return float(np.var(self.samples))

    def quantile(self, u: Any) -> np.ndarray:
        values = np.asarray(self.samples)
        index = np.minimum(
            (np.asarray(u, dtype=float) * len(values)).astype(np.int64), len(values) - 1
        )
        return values[index]

    def scaled(self, factor: float) -> Empirical:
        return Empirical(tuple(x * factor for x in self.samples))

    def spec(self) -> str:
        return "empirical(" + ", ".join(_num(x) for x in self.samples) + ")"


_FAMILIES: dict[str, tuple[type[Distribution], tuple[str, ...]]] = {
    "exponential": (Exponential, ("rate", "mean")),
    "gamma": (Gamma, ("shape", "mean")),
    "lognormal": (Lognormal, ("mean", "sigma")),
    "weibull": (Weibull, ("shape", "mean")),
    "fixed": (Fixed, ("value",)),
    "empirical": (Empirical, ()),
}

_CALL = re.compile(r"^\s*([A-Za-z_]\w*)\s*\((.*)\)\s*$", re.S)


def parse_distribution(text: Any, *, field: str = "") -> Distribution:
    """Read a distribution from its scenario-file form, such as ``gamma(shape=2, mean=5)``.

    A bare number is read as ``fixed(number)``. Errors name ``field`` and show the accepted forms.
    """
    if isinstance(text, Distribution):
        return text
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise ScenarioError(
            f"expected a distribution such as 'exponential(mean=3)', got {text!r}",
            field=field,
            fix='write it as a string, e.g. "gamma(shape=2, mean=5)"',
        )
    if isinstance(text, int | float):
        try:
            return Fixed(float(text))
        except ScenarioError as err:
            raise ScenarioError(err.problem, field=field, fix=err.fix) from None
    match = _CALL.match(text)
    if not match:
        raise ScenarioError(
            f"cannot read distribution {text!r}",
            field=field,
            fix="write name(parameters), e.g. exponential(mean=3), fixed(0)",
        )
    name, body = match.group(1).lower(), match.group(2).strip()
    if name not in _FAMILIES:
        raise ScenarioError(
            f"unknown distribution {match.group(1)!r}",
            field=field,
            fix=suggest(name, _FAMILIES),
        )
    cls, keywords = _FAMILIES[name]
    positional: list[float] = []
    named: dict[str, float] = {}
    for raw in filter(None, (part.strip() for part in body.split(","))):
        key, eq, value = raw.partition("=")
        try:
            number = float(value if eq else key)
        except ValueError:
            raise ScenarioError(
                f"{name}: {raw!r} is not a number", field=field, fix=f"e.g. {_example(name)}"
            ) from None
        if eq:
            key = key.strip()
            if key not in keywords:
                raise ScenarioError(
                    f"{name} has no parameter {key!r}",
                    field=field,
                    fix=f"its parameters are {', '.join(keywords)}; e.g. {_example(name)}",
                )
            named[key] = number
        else:
            positional.append(number)
    try:
        if cls is Empirical:
            if named:
                raise ScenarioError("empirical takes values only", fix="e.g. empirical(1, 2.5, 4)")
            return Empirical(tuple(positional))
        if positional:
            if len(positional) > len(keywords) or named or cls is Exponential:
                raise ScenarioError(f"{name}: name the parameters", fix=f"e.g. {_example(name)}")
            named = dict(zip(keywords, positional, strict=False))
        missing = [k for k in keywords if k not in named and cls is not Exponential]
        if missing:
            raise ScenarioError(
                f"{name} is missing {', '.join(missing)}", fix=f"e.g. {_example(name)}"
            )
        return cls(**named)
    except ScenarioError as err:
        raise ScenarioError(err.problem, field=field, fix=err.fix) from None


def _example(name: str) -> str:
    return {
        "exponential": "exponential(mean=3)",
        "gamma": "gamma(shape=2, mean=5)",
        "lognormal": "lognormal(mean=40, sigma=0.5)",
        "weibull": "weibull(shape=1.5, mean=10)",
        "fixed": "fixed(0)",
        "empirical": "empirical(1, 2.5, 4)",
    }[name]
