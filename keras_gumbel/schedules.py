"""Temperature schedules: small pure functions of the global training step.

A schedule is any callable `step -> tau`. The classes here compute in plain
Python, so that `TemperatureScheduler` evaluates them on the host without a
device round trip; each validates its arguments, has a `get_config`, and is
registered for Keras serialization.

| schedule             | tau(step)                                              |
|----------------------|--------------------------------------------------------|
| `Constant`           | `value`                                                |
| `ExponentialDecay`   | `max(minimum, initial * exp(-rate * floor(step / interval) * interval))` |
| `GeometricDecay`     | `max(minimum, initial * decay ** step)`                |
| `LinearDecay`        | `initial + (final - initial) * min(step, steps) / steps` |
| `CosineDecay`        | `final + (initial - final) * (1 + cos(pi * min(step, steps) / steps))/2` |

`ExponentialDecay` is the schedule of Jang et al. (2017): tau starts at 1,
decays as `exp(-r t)` with `r` in {1e-5, 1e-4} (VAE) or 3e-5
(semi-supervised), is recomputed every `N` in {500, 1000, 2000} steps and
never falls below 0.5. `GeometricDecay` is the per-update form used by
quantizers such as wav2vec 2.0: `max(2.0 * 0.999995 ** t, 0.5)`.
"""

import math

import keras

from keras_gumbel.serialization import register
from keras_gumbel.validation import check_positive_float
from keras_gumbel.validation import check_positive_int
from keras_gumbel.validation import is_number

__all__ = [
    "Constant",
    "CosineDecay",
    "ExponentialDecay",
    "GeometricDecay",
    "LinearDecay",
    "TemperatureSchedule",
    "get",
]


def _check_step(step):
    if not is_number(step) or step < 0:
        raise ValueError(
            "Invalid value received for argument `step`. Expected a number "
            f">= 0. Received: step={step!r}"
        )
    return step


class TemperatureSchedule:
    """Base class: a callable from the global step to a temperature > 0.

    Subclasses implement `__call__(step)` in plain Python and `get_config()`
    (the arguments of `__init__`); `from_config` and `__repr__` come from
    here. Decorate a subclass with
    `keras.saving.register_keras_serializable()` to save it in a model's
    callbacks config.

    Example:

    >>> from keras_gumbel.schedules import TemperatureSchedule
    >>> class Halving(TemperatureSchedule):
    ...     def __init__(self, every=1000):
    ...         self.every = every
    ...     def __call__(self, step):
    ...         return 0.5 ** (step // self.every)
    ...     def get_config(self):
    ...         return {"every": self.every}
    >>> schedule = Halving(every=100)
    >>> schedule, [schedule(step) for step in (0, 150, 250)]
    (Halving(every=100), [1.0, 0.5, 0.25])
    """

    def __call__(self, step):
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@register
class Constant(TemperatureSchedule):
    """A fixed temperature, e.g. tau = 1 for the paper's binary networks.

    Args:
        value: Float > 0. Defaults to 1.0.

    Example:

    >>> from keras_gumbel.schedules import Constant
    >>> schedule = Constant(0.7)
    >>> schedule(0), schedule(10**6)
    (0.7, 0.7)
    """

    def __init__(self, value=1.0):
        check_positive_float("value", value)
        self.value = float(value)

    def __call__(self, step):
        _check_step(step)
        return self.value

    def get_config(self):
        return {"value": self.value}


@register
class ExponentialDecay(TemperatureSchedule):
    """The paper's schedule, `max(minimum, initial * exp(-rate * t_N))`.

    `t_N = floor(step / interval) * interval`: the temperature is recomputed
    every `interval` steps and held in between.

    Args:
        initial: Float > 0. Temperature at step 0. Defaults to 1.0.
        rate: Float >= 0. Decay rate per step. Defaults to 3e-5, the rate of
            the reference implementation (reaches 0.5 near step 23,000).
        minimum: Float > 0. Floor of the temperature. Defaults to 0.5.
        interval: Integer >= 1. Steps between recomputations. Defaults to
            1000.

    Example:

    The temperature is held for `interval` steps, then decays to its floor:

    >>> from keras_gumbel.schedules import ExponentialDecay
    >>> schedule = ExponentialDecay(initial=1.0, rate=1e-4, minimum=0.5,
    ...                             interval=500)
    >>> [round(schedule(step), 4) for step in (0, 499, 500, 1000, 10000)]
    [1.0, 1.0, 0.9512, 0.9048, 0.5]
    """

    def __init__(self, initial=1.0, rate=3e-5, minimum=0.5, interval=1000):
        check_positive_float("initial", initial)
        if not is_number(rate) or not math.isfinite(rate) or rate < 0:
            raise ValueError(
                "Invalid value received for argument `rate`. Expected a "
                f"finite float >= 0. Received: rate={rate!r}"
            )
        check_positive_float("minimum", minimum)
        check_positive_int("interval", interval)
        self.initial = float(initial)
        self.rate = float(rate)
        self.minimum = float(minimum)
        self.interval = interval

    def __call__(self, step):
        held = (int(_check_step(step)) // self.interval) * self.interval
        return max(self.minimum, self.initial * math.exp(-self.rate * held))

    def get_config(self):
        return {
            "initial": self.initial,
            "rate": self.rate,
            "minimum": self.minimum,
            "interval": self.interval,
        }


@register
class GeometricDecay(TemperatureSchedule):
    """Per-step geometric decay with a floor, `max(minimum, initial * decay**step)`.

    Args:
        initial: Float > 0. Defaults to 2.0.
        decay: Float in (0, 1]. Multiplier per step. Defaults to 0.999995.
        minimum: Float > 0. Defaults to 0.5.

    Example:

    The defaults are wav2vec 2.0's schedule, which reaches its floor of 0.5
    after about 277,000 steps:

    >>> from keras_gumbel.schedules import GeometricDecay
    >>> schedule = GeometricDecay()
    >>> [round(schedule(step), 4) for step in (0, 100000, 300000)]
    [2.0, 1.2131, 0.5]
    """

    def __init__(self, initial=2.0, decay=0.999995, minimum=0.5):
        check_positive_float("initial", initial)
        if not is_number(decay) or not 0 < decay <= 1:
            raise ValueError(
                "Invalid value received for argument `decay`. Expected a "
                f"float in (0, 1]. Received: decay={decay!r}"
            )
        check_positive_float("minimum", minimum)
        self.initial = float(initial)
        self.decay = float(decay)
        self.minimum = float(minimum)

    def __call__(self, step):
        # Computed in log space: decay ** step underflows to 0 harmlessly.
        value = self.initial * math.exp(_check_step(step) * math.log(self.decay))
        return max(self.minimum, value)

    def get_config(self):
        return {"initial": self.initial, "decay": self.decay, "minimum": self.minimum}


class _Interpolation(TemperatureSchedule):
    """Goes from `initial` to `final` over `steps`, then stays at `final`."""

    def __init__(self, initial=1.0, final=0.5, steps=10000):
        check_positive_float("initial", initial)
        check_positive_float("final", final)
        check_positive_int("steps", steps)
        self.initial = float(initial)
        self.final = float(final)
        self.steps = steps

    def __call__(self, step):
        fraction = min(_check_step(step), self.steps) / self.steps
        return self.final + (self.initial - self.final) * self._remaining(fraction)

    def _remaining(self, fraction):
        raise NotImplementedError

    def get_config(self):
        return {"initial": self.initial, "final": self.final, "steps": self.steps}


@register
class LinearDecay(_Interpolation):
    """Linear interpolation from `initial` to `final` over `steps` steps.

    Args:
        initial: Float > 0. Defaults to 1.0.
        final: Float > 0. Defaults to 0.5.
        steps: Integer >= 1. Defaults to 10000.

    Example:

    >>> from keras_gumbel.schedules import LinearDecay
    >>> schedule = LinearDecay(initial=1.0, final=0.5, steps=1000)
    >>> [schedule(step) for step in (0, 250, 500, 1000, 5000)]
    [1.0, 0.875, 0.75, 0.5, 0.5]
    """

    def _remaining(self, fraction):
        return 1.0 - fraction


@register
class CosineDecay(_Interpolation):
    """Half-cosine from `initial` to `final` over `steps` steps.

    Args:
        initial: Float > 0. Defaults to 1.0.
        final: Float > 0. Defaults to 0.5.
        steps: Integer >= 1. Defaults to 10000.

    Example:

    Slower than `LinearDecay` at both ends, and equal to it half-way:

    >>> from keras_gumbel.schedules import CosineDecay
    >>> schedule = CosineDecay(initial=1.0, final=0.5, steps=1000)
    >>> [round(schedule(step), 4) for step in (0, 250, 500, 1000, 5000)]
    [1.0, 0.9268, 0.75, 0.5, 0.5]
    """

    def _remaining(self, fraction):
        return 0.5 * (1.0 + math.cos(math.pi * fraction))


_NAMES = {
    "constant": Constant,
    "exponential": ExponentialDecay,
    "geometric": GeometricDecay,
    "linear": LinearDecay,
    "cosine": CosineDecay,
}


def get(identifier, **kwargs):
    """Resolves a schedule from a name, a config dict or a callable.

    Args:
        identifier: One of `"constant"`, `"exponential"`, `"geometric"`,
            `"linear"`, `"cosine"` (built with `**kwargs`); a dict from
            `keras.saving.serialize_keras_object`; a
            `keras.optimizers.schedules.LearningRateSchedule`; or any
            callable of the step.
        **kwargs: Arguments of the named schedule.

    Returns:
        A callable `step -> temperature`.

    Example:

    >>> import keras
    >>> from keras_gumbel import schedules
    >>> schedules.get("linear", steps=100)
    LinearDecay(initial=1.0, final=0.5, steps=100)
    >>> config = keras.saving.serialize_keras_object(schedules.CosineDecay(steps=100))
    >>> schedules.get(config)
    CosineDecay(initial=1.0, final=0.5, steps=100)
    >>> schedules.get(lambda step: 1.0 / (1 + step))(3)
    0.25
    """
    if isinstance(identifier, str):
        if identifier not in _NAMES:
            raise ValueError(
                "Invalid value received for argument `identifier`. Expected "
                f"one of {sorted(_NAMES)}. Received: identifier={identifier!r}"
            )
        return _NAMES[identifier](**kwargs)
    if kwargs:
        raise TypeError(
            f"Keyword arguments are only accepted with a schedule name. Received: {sorted(kwargs)}"
        )
    if isinstance(identifier, dict):
        return keras.saving.deserialize_keras_object(identifier)
    if callable(identifier):
        return identifier
    raise TypeError(
        "Invalid value received for argument `identifier`. Expected a "
        f"schedule name, config dict or callable. Received: {identifier!r}"
    )
