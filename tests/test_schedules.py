"""Tests of keras_gumbel.schedules."""

import math

import keras
import pytest

from keras_gumbel import schedules


def test_exponential_decay_is_the_papers_schedule():
    s = schedules.ExponentialDecay(initial=1.0, rate=3e-5, minimum=0.5, interval=1000)
    assert s(0) == 1.0
    assert s(999) == 1.0  # held between recomputations
    assert s(1000) == pytest.approx(math.exp(-0.03))
    assert s(1999) == s(1000)
    # exp(-3e-5 t) = 0.5 at t = 23,105: the floor from step 24,000 on.
    assert s(23_000) > 0.5 and s(24_000) == 0.5 and s(10**9) == 0.5


def test_geometric_decay_is_wav2vec_style():
    s = schedules.GeometricDecay(initial=2.0, decay=0.999995, minimum=0.5)
    assert s(0) == 2.0
    assert s(100_000) == pytest.approx(2.0 * 0.999995**100_000)
    assert s(10**7) == 0.5


@pytest.mark.parametrize("cls", [schedules.LinearDecay, schedules.CosineDecay])
def test_interpolations_reach_final_and_stay(cls):
    s = cls(initial=2.0, final=0.5, steps=100)
    assert s(0) == 2.0
    assert s(50) == pytest.approx(1.25)  # the midpoint of both shapes
    assert s(100) == pytest.approx(0.5) and s(1000) == pytest.approx(0.5)
    values = [s(t) for t in range(101)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_cosine_shape():
    s = schedules.CosineDecay(initial=1.0, final=0.0 + 1e-9, steps=4)
    assert s(1) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)), rel=1e-6)


@pytest.mark.parametrize(
    "factory, pattern",
    [
        (lambda: schedules.ExponentialDecay(rate=-1.0), r"`rate`.*Received: rate=-1.0"),
        (lambda: schedules.ExponentialDecay(minimum=0), r"`minimum`"),
        (lambda: schedules.ExponentialDecay(interval=0), r"`interval`.*Received: interval=0"),
        (lambda: schedules.GeometricDecay(decay=1.5), r"`decay`"),
        (lambda: schedules.LinearDecay(steps=2.5), r"`steps`"),
        (lambda: schedules.Constant(float("nan")), r"`value`"),
        (lambda: schedules.Constant(1.0)(-1), r"`step`"),
        (lambda: schedules.get("exp"), r"one of \['constant', 'cosine'"),
    ],
)
def test_bad_arguments_raise(factory, pattern):
    with pytest.raises(ValueError, match=pattern):
        factory()


def test_get_resolves_names_configs_and_callables():
    named = schedules.get("exponential", rate=1e-4, interval=500)
    assert isinstance(named, schedules.ExponentialDecay) and named.rate == 1e-4
    config = keras.saving.serialize_keras_object(named)
    revived = schedules.get(config)
    assert type(revived) is schedules.ExponentialDecay
    assert revived.get_config() == named.get_config()
    fn = lambda step: 1.0  # noqa: E731
    assert schedules.get(fn) is fn
    with pytest.raises(TypeError, match="Expected a schedule name"):
        schedules.get(3)
    assert "ExponentialDecay(initial=1.0" in repr(named)
