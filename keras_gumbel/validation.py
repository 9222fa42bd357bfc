"""Argument checks shared by every module, with Keras-style messages.

A leaf module: it imports nothing of keras-gumbel, so `ops` may use it.
"""

import math
import numbers

import keras


def _invalid(name, expected, value):
    return (
        f"Invalid value received for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )


def is_number(value):
    """True for real Python/NumPy numbers, False for bools and tensors."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_float(name, value):
    """Raises ValueError unless `value` is a finite real number > 0."""
    if not is_number(value) or not math.isfinite(value) or value <= 0:
        raise ValueError(_invalid(name, "a finite float > 0", value))


def check_bool(name, value):
    """Raises TypeError unless `value` is a bool."""
    if not isinstance(value, bool):
        raise TypeError(_invalid(name, "a boolean", value))


def check_optional_int(name, value):
    """Raises TypeError unless `value` is None or an integer."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(_invalid(name, "an integer or None", value))


def check_float_tensor(name, x):
    """Raises TypeError unless tensor `x` has a floating-point dtype."""
    dtype = keras.backend.standardize_dtype(x.dtype)
    if "float" not in dtype:
        raise TypeError(
            f"Expected a floating-point tensor for argument `{name}`. "
            f"Received: {name}.dtype={dtype}"
        )


def check_positive_int(name, value, minimum=1):
    """Raises ValueError unless `value` is an integer >= `minimum`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(_invalid(name, f"an integer >= {minimum}", value))


def check_choice(name, value, choices):
    """Raises ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(_invalid(name, f"one of {tuple(choices)}", value))
