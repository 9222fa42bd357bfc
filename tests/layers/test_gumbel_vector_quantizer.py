"""Tests of the GumbelVectorQuantizer layer and the codebook ops."""

import keras
import numpy as np
import pytest
from scipy.special import softmax
from scipy.special import xlogy
from testing import BACKEND
from testing import SLOW_ON_TORCH
from testing import check_layer
from testing import grad
from testing import to_numpy

from keras_gumbel import ops as gumbel_ops
from keras_gumbel import schedules
from keras_gumbel.callbacks import TemperatureScheduler
from keras_gumbel.layers import GumbelVectorQuantizer
from keras_gumbel.layers import TemperatureLayer

SIZES = {"num_groups": 2, "num_vars": 5, "codevector_dim": 6}


def _layer(x_dim, **kwargs):
    layer = GumbelVectorQuantizer(**{**SIZES, **kwargs})
    layer.build((None, x_dim))
    return layer


def _set_weights(layer, seed=0, scale=1.0):
    """Random weights; returns them as NumPy arrays (kernel, bias, codevectors)."""
    rng = np.random.default_rng(seed)
    values = [
        scale * rng.normal(size=tuple(w.shape)).astype("float32") for w in layer.trainable_weights
    ]
    for weight, value in zip(layer.trainable_weights, values, strict=True):
        weight.assign(value)
    return values


def _reference_logits(x, kernel, bias, num_groups):
    logits = x.astype("float64") @ kernel.astype("float64") + bias
    return logits.reshape(x.shape[:-1] + (num_groups, -1))


def _reference_perplexity(probs, mask=None):
    """HF's `_compute_perplexity` in NumPy, float64."""
    p = probs.reshape((-1,) + probs.shape[-2:]).astype("float64")
    if mask is None:
        marginal = p.mean(axis=0)
    else:
        keep = mask.reshape(-1)
        marginal = np.where(keep[:, None, None], p, 0.0).sum(axis=0) / keep.sum()
    return np.exp(-xlogy(marginal, marginal).sum(axis=-1)).sum()


def _reference_outputs(codes, codevectors, num_groups):
    table = codevectors.reshape(num_groups, -1, codevectors.shape[-1])
    picked = table[np.arange(num_groups), codes]  # [..., G, C_g]
    return picked.reshape(codes.shape[:-1] + (-1,))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_groups": 2, "num_vars": 4, "codevector_dim": 6, "seed": 1},
        {"num_groups": 3, "num_vars": 7, "codevector_dim": 6, "temperature": 0.5, "seed": 2},
        {
            "num_groups": 1,
            "num_vars": 3,
            "codevector_dim": 6,
            "hard": False,
            "diversity_weight": 0.0,
            "sample_at_inference": True,
            "seed": 3,
        },
    ],
)
def test_layer_harness(kwargs, tmp_path):
    check_layer(GumbelVectorQuantizer, kwargs, input_shape=(5, 6), tmp_path=tmp_path)


def test_layer_harness_with_another_output_size(tmp_path):
    kwargs = {"num_groups": 2, "num_vars": 3, "codevector_dim": 4, "seed": 5}
    check_layer(
        GumbelVectorQuantizer,
        kwargs,
        input_shape=(3, 5, 7),
        tmp_path=tmp_path,
        output_shape=(3, 5, 4),
    )


def test_weights_are_kernel_bias_codevectors_in_order():
    layer = GumbelVectorQuantizer(3, 10, 12, temperature=1.5, dtype="mixed_float16")
    layer.build((None, 7, 16))
    names = [w.path.split("/")[-1] for w in layer.trainable_weights]
    assert names == ["kernel", "bias", "codevectors"]
    assert [tuple(w.shape) for w in layer.trainable_weights] == [(16, 30), (30,), (30, 4)]
    for weight in layer.weights:
        assert keras.backend.standardize_dtype(weight.dtype) == "float32"
    temperature = layer.temperature_variable
    assert layer.non_trainable_weights == [temperature]
    assert tuple(temperature.shape) == () and not temperature.trainable
    assert float(to_numpy(temperature)) == np.float32(1.5)
    assert isinstance(layer, TemperatureLayer)
    assert layer.num_codevectors == 30


def test_default_temperature_and_initializers_follow_wav2vec2():
    layer = GumbelVectorQuantizer(2, 320, 256, seed=0)
    assert layer.temperature == 2.0 and layer.hard and layer.diversity_weight == 0.1
    layer.build((None, 512))
    kernel, bias, codevectors = (to_numpy(w) for w in layer.trainable_weights)
    # N(0, 1) kernel: 327,680 draws give a std within 1% of 1.
    assert abs(kernel.std() - 1.0) < 0.01 and abs(kernel.mean()) < 0.01
    assert np.all(bias == 0)
    assert codevectors.min() >= 0 and codevectors.max() < 1
    assert abs(codevectors.mean() - 0.5) < 0.01


def test_inference_is_the_argmax_code_vector_and_draws_no_random_numbers():
    x = np.random.default_rng(1).normal(size=(4, 30, 8)).astype("float32")
    layer = _layer(8, seed=0)
    kernel, bias, codevectors = _set_weights(layer)
    state = to_numpy(layer.seed_generator.state).copy()
    y1, y2 = to_numpy(layer(x)), to_numpy(layer(x, training=False))
    np.testing.assert_array_equal(to_numpy(layer.seed_generator.state), state)
    np.testing.assert_array_equal(y1, y2)
    codes = _reference_logits(x, kernel, bias, 2).argmax(axis=-1)
    np.testing.assert_allclose(y1, _reference_outputs(codes, codevectors, 2), rtol=0, atol=0)


def test_training_forward_is_exactly_one_code_vector_per_group():
    x = np.random.default_rng(2).normal(size=(8, 40, 8)).astype("float32")
    layer = _layer(8, seed=3)
    _, _, codevectors = _set_weights(layer)
    y = to_numpy(layer(x, training=True)).reshape(-1, 2, 3)
    table = codevectors.reshape(2, 5, 3)
    for group in range(2):
        # Each output slice equals one row of its group's codebook exactly.
        equal = np.all(y[:, group, None, :] == table[group][None], axis=-1)
        np.testing.assert_array_equal(equal.sum(axis=-1), 1)
    # A sample, not the argmax: some positions pick another code.
    assert not np.array_equal(y, to_numpy(layer(x)).reshape(-1, 2, 3))


@pytest.mark.parametrize("temperature", [0.5, 2.0])
def test_training_codes_follow_softmax_of_the_projected_logits(temperature):
    # Identity code vectors make each output group the one-hot of its code.
    num_groups, num_vars, n = 2, 5, 20000
    layer = GumbelVectorQuantizer(
        num_groups,
        num_vars,
        num_groups * num_vars,
        temperature=temperature,
        diversity_weight=0.0,
        codevector_initializer=keras.initializers.Constant(0.0),
        seed=4,
    )
    layer.build((None, 3))
    layer.codevectors.assign(np.tile(np.eye(num_vars, dtype="float32"), (num_groups, 1)))
    kernel = np.random.default_rng(5).normal(size=(3, 10)).astype("float32")
    layer.kernel.assign(kernel)
    x = np.tile(np.array([[0.3, -0.8, 0.5]], "float32"), (n, 1))
    one_hot = to_numpy(layer(x, training=True)).reshape(n, num_groups, num_vars)
    frequencies = one_hot.mean(axis=0)
    probs = softmax((x[:1] @ kernel).reshape(num_groups, num_vars), axis=-1)
    # The Gumbel-max choice is an exact categorical draw at every tau, so the
    # frequencies of n draws are within 5 standard errors,
    # 5 * sqrt(p (1 - p) / n), of softmax(logits) (a false alarm per cell
    # has probability < 1e-6); a tau applied before the noise would move
    # them by more than 0.05 here.
    bound = 5 * np.sqrt(probs * (1 - probs) / n)
    assert np.all(np.abs(frequencies - probs) <= bound), (frequencies, probs)
    assert probs.max() - probs.min() > 0.2  # the logits are far from uniform


def test_straight_through_gradient_equals_the_soft_paths():
    x = np.random.default_rng(6).normal(size=(3, 20, 8)).astype("float32")
    w = np.random.default_rng(7).normal(size=(3, 20, 6)).astype("float32")
    grads, outputs = {}, {}
    for hard in (True, False):
        layer = _layer(8, hard=hard, temperature=0.7, diversity_weight=0.0, seed=8)
        _set_weights(layer)
        grads[hard] = grad(
            lambda x, layer=layer: keras.ops.sum(keras.ops.multiply(layer(x, training=True), w)), x
        )
        outputs[hard] = to_numpy(_layer(8, hard=hard, seed=8)(x, training=True))
    assert np.abs(grads[False]).max() > 1e-3  # the gradient is not trivially 0
    np.testing.assert_allclose(grads[True], grads[False], rtol=1e-5, atol=1e-6)
    assert not np.allclose(outputs[True], outputs[False])


def test_soft_gradient_value_against_the_formula():
    # d/dx sum(y * w) for y_g = softmax((x K + b + noise)_g / tau) @ C_g:
    # with tau -> huge the noise barely matters, so check against tau = 1e4
    # where y is the mean code vector and the gradient is
    # K @ (J_g^T (C_g w_g)) with J the softmax Jacobian, divided by tau.
    x = np.random.default_rng(9).normal(size=(1, 8)).astype("float32")
    w = np.random.default_rng(10).normal(size=(1, 6)).astype("float32")
    tau = 1e4
    layer = _layer(8, hard=False, temperature=tau, diversity_weight=0.0, seed=11)
    kernel, _, codevectors = _set_weights(layer)
    g = grad(lambda x: keras.ops.sum(keras.ops.multiply(layer(x, training=True), w)), x)
    table = codevectors.reshape(2, 5, 3).astype("float64")
    upstream = np.einsum("gvc,gc->gv", table, w.reshape(2, 3))  # d loss / d y_gv
    p = np.full(5, 0.2)
    jacobian = (np.diag(p) - np.outer(p, p)) / tau  # softmax at near-equal scores
    d_logits = (upstream @ jacobian).reshape(-1)
    np.testing.assert_allclose(g.reshape(-1), kernel @ d_logits, rtol=2e-2, atol=1e-9)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("masked", [False, True])
def test_perplexity_and_diversity_loss_match_numpy(training, masked):
    x = np.random.default_rng(12).normal(size=(4, 25, 8)).astype("float32")
    mask = np.random.default_rng(13).uniform(size=(4, 25)) > 0.3 if masked else None
    layer = _layer(8, diversity_weight=0.25, seed=14)
    kernel, bias, _ = _set_weights(layer, scale=0.5)
    layer(x, training=training, mask=mask)
    logits = _reference_logits(x, kernel, bias, 2)
    if training:
        probs = softmax(logits, axis=-1)
    else:
        probs = np.eye(5)[logits.argmax(axis=-1)]
    expected = _reference_perplexity(probs, mask)
    (loss,) = layer.losses
    np.testing.assert_allclose(float(to_numpy(loss)), 0.25 * (10 - expected) / 10, rtol=1e-5)
    direct = gumbel_ops.codebook_perplexity(probs.astype("float32"), mask)
    np.testing.assert_allclose(float(to_numpy(direct)), expected, rtol=1e-5)
    if masked:  # the mask changes the value: the test would see it ignored
        assert abs(expected - _reference_perplexity(probs)) > 1e-3
    if layer.perplexity_tracker is not None:
        np.testing.assert_allclose(
            float(to_numpy(layer.perplexity_tracker.result())), expected, rtol=1e-5
        )


def test_diversity_loss_gradient_matches_finite_differences():
    x = np.random.default_rng(15).normal(size=(30, 8)).astype("float32")
    layer = _layer(8, diversity_weight=1.0, seed=16)
    _set_weights(layer, scale=0.3)

    def loss(x):
        layer(x, training=True)
        return layer.losses[0]

    g = grad(loss, x)
    direction = np.random.default_rng(17).normal(size=x.shape)
    eps = 1e-2
    plus = float(to_numpy(loss((x + eps * direction).astype("float32"))))
    minus = float(to_numpy(loss((x - eps * direction).astype("float32"))))
    np.testing.assert_allclose((g * direction).sum(), (plus - minus) / (2 * eps), rtol=2e-2)


def test_time_step_mask_from_embedding_is_used_and_passed_on():
    ids = np.random.default_rng(18).integers(1, 20, size=(6, 12))
    ids[:, 8:] = 0
    inputs = keras.Input(shape=(None,), dtype="int32")
    embedded = keras.layers.Embedding(20, 8, mask_zero=True)(inputs)
    quantizer = GumbelVectorQuantizer(**SIZES, diversity_weight=1.0, seed=19)
    outputs = quantizer(embedded)
    assert outputs._keras_mask is not None
    model = keras.Model(inputs, outputs)
    y = to_numpy(model(ids))
    assert np.all(np.isfinite(y)) and y.shape == (6, 12, 6)
    features = to_numpy(model.layers[1](ids))
    kernel, bias, _ = (to_numpy(w) for w in quantizer.trainable_weights)
    probs = np.eye(5)[_reference_logits(features, kernel, bias, 2).argmax(axis=-1)]
    expected = _reference_perplexity(probs, ids != 0)
    (loss,) = model.losses
    np.testing.assert_allclose(float(to_numpy(loss)), (10 - expected) / 10, rtol=1e-5)
    assert abs(expected - _reference_perplexity(probs)) > 1e-3


def test_masking_layer_mask_leaves_padded_steps_out():
    x = np.random.default_rng(20).normal(size=(3, 10, 8)).astype("float32")
    x[:, 6:] = 0.0
    model = keras.Sequential(
        [
            keras.Input(shape=(10, 8)),
            keras.layers.Masking(0.0),
            GumbelVectorQuantizer(**SIZES, diversity_weight=1.0, seed=21),
        ]
    )
    model(x)
    quantizer = model.layers[-1]
    kernel, bias, _ = (to_numpy(w) for w in quantizer.trainable_weights)
    probs = np.eye(5)[_reference_logits(x, kernel, bias, 2).argmax(axis=-1)]
    expected = _reference_perplexity(probs, np.arange(10)[None, :].repeat(3, 0) < 6)
    np.testing.assert_allclose(float(to_numpy(model.losses[0])), (10 - expected) / 10, rtol=1e-5)


def test_mixed_precision_runs_in_float32_inside():
    x = np.random.default_rng(22).normal(size=(4, 9, 8)).astype("float16")
    mixed = _layer(8, dtype="mixed_float16", seed=23)
    full = _layer(8, seed=23)
    for layer in (mixed, full):
        _set_weights(layer)
    for training in (False, True):
        y16 = mixed(x, training=training)
        y32 = full(x.astype("float32"), training=training)
        assert keras.backend.standardize_dtype(y16.dtype) == "float16"
        # The same float32 computation, rounded once at the end.
        np.testing.assert_array_equal(to_numpy(y16), to_numpy(y32).astype("float16"))
    codes = mixed.discrete_codes(x)
    assert keras.backend.standardize_dtype(codes["probs"].dtype) == "float32"


def test_discrete_codes():
    x = np.random.default_rng(24).normal(size=(3, 7, 8)).astype("float32")
    layer = GumbelVectorQuantizer(**SIZES, seed=25)
    assert "group" in GumbelVectorQuantizer.codes_description
    codes = layer.discrete_codes(x)  # builds the layer
    kernel, bias, codevectors = (to_numpy(w) for w in layer.trainable_weights)
    logits = _reference_logits(x, kernel, bias, 2)
    expected_dtype = "int32" if BACKEND == "jax" else "int64"
    assert keras.backend.standardize_dtype(codes["codes"].dtype) == expected_dtype
    assert tuple(codes["codes"].shape) == (3, 7, 2)
    assert tuple(codes["one_hot"].shape) == tuple(codes["probs"].shape) == (3, 7, 2, 5)
    for key in ("one_hot", "probs"):
        assert keras.backend.standardize_dtype(codes[key].dtype) == "float32"
    np.testing.assert_array_equal(to_numpy(codes["codes"]), logits.argmax(axis=-1))
    np.testing.assert_array_equal(to_numpy(codes["one_hot"]), np.eye(5)[logits.argmax(axis=-1)])
    np.testing.assert_allclose(to_numpy(codes["probs"]), softmax(logits, axis=-1), rtol=1e-5)
    # The codes are those of the inference output.
    np.testing.assert_array_equal(
        _reference_outputs(to_numpy(codes["codes"]), codevectors, 2), to_numpy(layer(x))
    )
    state = to_numpy(layer.seed_generator.state).copy()
    again = layer.discrete_codes(x, mask=np.ones((3, 7), bool))
    np.testing.assert_array_equal(to_numpy(again["codes"]), to_numpy(codes["codes"]))
    np.testing.assert_array_equal(to_numpy(layer.seed_generator.state), state)


def test_perplexity_metric_in_fit_and_evaluate():
    x = np.random.default_rng(26).normal(size=(32, 10, 8)).astype("float32")
    quantizer = GumbelVectorQuantizer(**SIZES, name="vq", seed=27)
    model = keras.Sequential([keras.Input(shape=(10, 8)), quantizer])
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, np.zeros((32, 10, 6)), batch_size=8, epochs=2, verbose=0)
    if BACKEND == "jax":
        # Keras's JAX trainer keeps metric state out of the forward pass.
        assert quantizer.perplexity_tracker is None and "vq_perplexity" not in history.history
        return
    assert all(2 <= value <= 10 for value in history.history["vq_perplexity"])
    logs = model.evaluate(x, np.zeros((32, 10, 6)), batch_size=32, verbose=0, return_dict=True)
    kernel, bias, _ = (to_numpy(w) for w in quantizer.trainable_weights)
    probs = np.eye(5)[_reference_logits(x, kernel, bias, 2).argmax(axis=-1)]
    np.testing.assert_allclose(logs["vq_perplexity"], _reference_perplexity(probs), rtol=1e-5)


@pytest.mark.parametrize("mode", ["eager", "graph", pytest.param("xla", marks=SLOW_ON_TORCH)])
def test_fit_trains_the_projection_and_the_codebook(mode):
    if BACKEND == "jax" and mode == "graph":
        pytest.skip("JAX has no non-XLA graph mode")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(28).normal(size=(64, 10, 8)).astype("float32")
    quantizer = GumbelVectorQuantizer(**SIZES, seed=29)
    model = keras.Sequential([keras.Input(shape=(10, 8)), keras.layers.Dense(8), quantizer])
    model.compile(
        optimizer="adam", loss="mse", run_eagerly=mode == "eager", jit_compile=mode == "xla"
    )
    before = [to_numpy(w).copy() for w in model.trainable_weights]
    model.fit(x, np.ones((64, 10, 6)), batch_size=16, epochs=2, verbose=0)
    for old, weight in zip(before, model.trainable_weights, strict=True):
        assert np.abs(to_numpy(weight) - old).max() > 1e-4, weight.path


def test_temperature_scheduler_anneals_with_the_wav2vec2_schedule():
    x = np.random.default_rng(30).normal(size=(40, 5, 8)).astype("float32")
    quantizer = GumbelVectorQuantizer(**SIZES, seed=31)
    model = keras.Sequential([keras.Input(shape=(5, 8)), quantizer])
    model.compile(optimizer="sgd", loss="mse")
    schedule = schedules.GeometricDecay()  # max(2 * 0.999995 ** t, 0.5)
    seen = []

    class Record(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.model  # noqa: B018 -- on JAX, writes the train state back first
            seen.append(float(to_numpy(quantizer.temperature_variable)))

    model.fit(
        x,
        np.zeros((40, 5, 6)),
        batch_size=8,
        epochs=2,
        verbose=0,
        callbacks=[TemperatureScheduler(schedule), Record()],
    )
    np.testing.assert_allclose(seen, [2 * 0.999995**t for t in range(10)], rtol=1e-7)
    # A faster decay reaches wav2vec 2.0's floor of 0.5 and stays there.
    fast = schedules.GeometricDecay(initial=2.0, decay=0.5, minimum=0.5)
    seen.clear()
    model.fit(
        x,
        np.zeros((40, 5, 6)),
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[TemperatureScheduler(fast), Record()],
    )
    assert seen == [0.5] * 5
    # The sample depends on the annealed variable.
    soft = _layer(8, hard=False, seed=32)
    _set_weights(soft)
    a = to_numpy(soft(x[:2, :, :], training=True))
    soft.temperature_variable.assign(0.5)
    soft.seed_generator.state.assign(_layer(8, seed=32).seed_generator.state)
    b = to_numpy(soft(x[:2, :, :], training=True))
    assert not np.allclose(a, b)


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"codevector_dim": 7}, ValueError, r"`codevector_dim`.*divisible by num_groups=2.*=7"),
        ({"num_groups": 0}, ValueError, r"`num_groups`.*integer >= 1.*num_groups=0"),
        ({"num_vars": -3}, ValueError, r"`num_vars`.*integer >= 1.*num_vars=-3"),
        ({"codevector_dim": 0}, ValueError, r"`codevector_dim`.*integer >= 1.*codevector_dim=0"),
        ({"num_vars": 2.5}, ValueError, r"`num_vars`.*num_vars=2.5"),
        ({"temperature": 0}, ValueError, r"`temperature`.*Received: temperature=0"),
        ({"diversity_weight": -0.1}, ValueError, r"`diversity_weight`.*>= 0.*=-0.1"),
        ({"diversity_weight": "a"}, ValueError, r"diversity_weight='a'"),
        ({"hard": 1}, TypeError, r"`hard`.*Received: hard=1"),
        ({"seed": 1.5}, TypeError, r"`seed`.*Received: seed=1.5"),
        ({"learn_temperature": True}, ValueError, r"Unrecognized.*learn_temperature"),
        ({"temprature": 1.0}, ValueError, r"Unrecognized keyword arguments.*temprature"),
    ],
)
def test_bad_arguments_raise(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        GumbelVectorQuantizer(**{**SIZES, **kwargs})


def test_bad_inputs_raise():
    layer = GumbelVectorQuantizer(**SIZES)
    with pytest.raises(ValueError, match=r"known last input axis"):
        layer(keras.Input(shape=(4, None)))
    with pytest.raises(TypeError, match=r"`inputs`.*int32"):
        layer(np.zeros((2, 3, 4), "int32"))
    with pytest.raises(ValueError, match=r"time-step mask of shape inputs.shape\[:-1\]"):
        layer(np.zeros((2, 3, 4), "float32"), mask=np.ones((2, 3, 4), bool))
