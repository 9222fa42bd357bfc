"""Tests of the CodeUsage callback."""

import doctest

import keras
import numpy as np
import pytest
from testing import BACKEND
from testing import to_numpy

from keras_gumbel import ops as gumbel_ops
from keras_gumbel.callbacks import CodeUsage
from keras_gumbel.callbacks import code_usage
from keras_gumbel.layers import ConcreteSelect
from keras_gumbel.layers import GumbelSigmoid
from keras_gumbel.layers import GumbelSoftmax
from keras_gumbel.layers import GumbelTopK
from keras_gumbel.layers import GumbelVectorQuantizer

K = 8


def _fixed_logits_model(input_shape, jit_compile="auto"):
    """Identity Dense (never updated: lr 0) then a hard GumbelSoftmax.

    The codes layer then sees exactly the logits we feed, at every step.
    """
    model = keras.Sequential(
        [
            keras.Input(shape=input_shape),
            keras.layers.Dense(K, kernel_initializer="identity", use_bias=False),
            GumbelSoftmax(hard=True, seed=0, name="codes"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", jit_compile=jit_compile)
    return model


def _choosing(codes, shape=()):
    """Logits `[len(codes), *shape, K]` whose argmax is `codes[i]` in row i."""
    logits = np.full((len(codes),) + tuple(shape) + (K,), -5.0, "float32")
    for row, code in enumerate(codes):
        logits[row, ..., code] = 5.0
    return logits


@pytest.mark.parametrize("jit_compile", [False, True])
def test_exact_counts_for_two_codes_in_equal_use(jit_compile):
    # Every batch of 16 has 8 rows choosing code 0 and 8 choosing code 3.
    x = _choosing([0, 3] * 32)
    model = _fixed_logits_model((K,), jit_compile)
    callback = CodeUsage(update_freq=2, window=4)
    history = model.fit(
        x, x, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[callback]
    )

    assert history.history["codes/perplexity"] == [2.0, 2.0]
    assert history.history["codes/dead_codes"] == [K - 2, K - 2]
    assert callback.steps == [2, 4, 6, 8]
    assert callback.values["codes/dead_codes"] == [K - 2] * 4
    np.testing.assert_allclose(callback.values["codes/perplexity"], 2.0, rtol=1e-12)
    # window=4 steps = the last two reads: 4 batches of 16 rows.
    expected = np.zeros((1, K))
    expected[0, [0, 3]] = 32
    np.testing.assert_array_equal(callback.histograms["codes"], expected)


def test_unequal_use_gives_the_perplexity_of_the_usage():
    # 3 rows of code 1 for every row of code 2: exp(H(3/4, 1/4)).
    x = _choosing([1, 1, 1, 2] * 8)
    model = _fixed_logits_model((K,))
    callback = CodeUsage(update_freq=1, window=1)
    history = model.fit(
        x, x, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callback]
    )
    expected = np.exp(-(0.75 * np.log(0.75) + 0.25 * np.log(0.25)))
    np.testing.assert_allclose(history.history["codes/perplexity"], [expected], rtol=1e-12)


def test_windows_follow_the_recent_steps():
    # Batches 0-3 use code 0 only, batches 4-7 code 1 only (8 rows each).
    x = _choosing([0] * 32 + [1] * 32)
    model = _fixed_logits_model((K,))
    callback = CodeUsage(update_freq=2, window=2, dead_code_window=4)
    model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    assert callback.steps == [2, 4, 6, 8]
    # The perplexity window holds one read: a single code each time.
    assert callback.values["codes/perplexity"] == [1.0, 1.0, 1.0, 1.0]
    # The dead-code window holds two reads: at step 6 it still sees code 0.
    assert callback.values["codes/dead_codes"] == [K - 1, K - 1, K - 2, K - 1]
    expected = np.zeros((1, K))
    expected[0, 1] = 16
    np.testing.assert_array_equal(callback.histograms["codes"], expected)


def test_groups_and_per_group_logs():
    # [batch, 3, K]: three categorical variables; group g uses codes {g, g + 1}.
    x = np.concatenate(
        [
            np.stack([_choosing([g])[0] for g in range(3)])[None],
            np.stack([_choosing([g + 1])[0] for g in range(3)])[None],
        ]
        * 8
    )
    model = _fixed_logits_model((3, K))
    callback = CodeUsage(update_freq=1, window=1, per_group=True)
    history = model.fit(
        x, x, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[callback]
    )
    logs = {key: values[-1] for key, values in history.history.items()}
    assert logs["codes/perplexity"] == 6.0
    assert logs["codes/dead_codes"] == 3 * (K - 2)
    for group in range(3):
        assert logs[f"codes/perplexity/group_{group}"] == 2.0
        assert logs[f"codes/dead_codes/group_{group}"] == K - 2
        expected = np.zeros(K)
        expected[[group, group + 1]] = 8
        np.testing.assert_array_equal(callback.histograms["codes"][group], expected)


def test_time_step_mask_leaves_masked_positions_out():
    # [batch, 5 steps, K] logits; steps 3 and 4 are all zeros and masked.
    # The time axis has no fixed size, so it is positions of one group.
    x = _choosing([2] * 8, shape=(5,))
    x[:, 3:] = 0.0
    model = keras.Sequential(
        [
            keras.Input(shape=(None, K)),
            keras.layers.Masking(mask_value=0.0),
            keras.layers.Dense(K, kernel_initializer="identity", use_bias=False),
            GumbelSoftmax(hard=True, seed=0, name="codes"),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    callback = CodeUsage(update_freq=1)
    model.fit(x, x, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    expected = np.zeros((1, K))
    expected[0, 2] = 8 * 3
    np.testing.assert_array_equal(callback.histograms["codes"], expected)


def test_matches_the_codebook_perplexity_of_the_argmax_codes():
    # Frozen quantizer (lr 0), one full batch: the callback's perplexity is
    # `codebook_perplexity` of the one-hot argmax codes of that batch.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 10, 6)).astype("float32")
    quantizer = GumbelVectorQuantizer(3, 8, 6, seed=0, name="quantizer")
    model = keras.Sequential([keras.Input((10, 6)), quantizer])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    callback = CodeUsage(update_freq=1, window=1)
    history = model.fit(x, x, batch_size=64, epochs=1, verbose=0, callbacks=[callback])
    one_hot = quantizer.discrete_codes(x)["one_hot"]
    expected = float(to_numpy(gumbel_ops.codebook_perplexity(one_hot)))
    np.testing.assert_allclose(history.history["codes/perplexity"][0], expected, rtol=1e-5)
    counts = callback.histograms["quantizer"]
    assert counts.shape == (3, 8)
    np.testing.assert_array_equal(counts.sum(axis=-1), [64 * 10] * 3)
    codes = to_numpy(quantizer.discrete_codes(x)["codes"]).reshape(-1, 3)
    for group in range(3):
        np.testing.assert_array_equal(counts[group], np.bincount(codes[:, group], minlength=8))


def test_quantizer_fit_logs_usage_in_range():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(128, 12, 8)).astype("float32")
    inputs = keras.Input((12, 8))
    h = keras.layers.Dense(16)(inputs)
    h = GumbelVectorQuantizer(2, 16, 8, seed=0, name="quantizer")(h)
    model = keras.Model(inputs, keras.layers.Dense(8)(h))
    model.compile(optimizer="adam", loss="mse")
    callback = CodeUsage(update_freq=4, window=8)
    history = model.fit(x, x, batch_size=16, epochs=3, verbose=0, callbacks=[callback])
    perplexity = history.history["codes/perplexity"]
    dead = history.history["codes/dead_codes"]
    assert len(perplexity) == len(dead) == 3
    assert all(2.0 <= p <= 32.0 for p in perplexity)
    assert all(0 <= d <= 30 for d in dead)
    usage = callback.histograms["quantizer"]
    # 8 steps of 16 sequences of 12 positions in each group's window.
    np.testing.assert_array_equal(usage.sum(axis=-1), [8 * 16 * 12] * 2)
    assert dead[-1] == int(np.sum(usage == 0))


def _five_layer_models():
    # (name, input shape, layer, usage shape [groups, codes], codes counted
    # per group in 2 epochs of 24 rows)
    return [
        ("gumbel_softmax", (4, 6), GumbelSoftmax(hard=True, seed=0), (4, 6), 48),
        ("gumbel_sigmoid", (5,), GumbelSigmoid(hard=True, seed=0), (5, 2), 48),
        # 3 positions per row, each choosing one code per group.
        ("gumbel_vector_quantizer", (3, 6), GumbelVectorQuantizer(2, 5, 6, seed=0), (2, 5), 144),
        # k = 2 codes per row.
        ("gumbel_top_k", (7,), GumbelTopK(k=2, seed=0), (1, 7), 96),
        ("concrete_select", (7,), ConcreteSelect(num_selected=3, seed=0), (3, 7), 48),
    ]


@pytest.mark.parametrize(
    "name, input_shape, layer, layout, per_group",
    _five_layer_models(),
    ids=[case[0] for case in _five_layer_models()],
)
def test_every_codes_layer_in_a_nested_model(tmp_path, name, input_shape, layer, layout, per_group):
    # The codes layer sits in a model nested inside another one.
    inner = keras.Sequential([keras.Input(input_shape), layer], name="inner")
    inputs = keras.Input(input_shape)
    outputs = keras.layers.Dense(3)(inner(keras.layers.Dense(input_shape[-1])(inputs)))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(24,) + input_shape).astype("float32")
    y = np.zeros((24,) + input_shape[:-1] + (3,), "float32")
    weights_before = [w.path for w in model.weights]
    config_before = layer.get_config()

    callback = CodeUsage(update_freq=1)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])

    assert {"codes/perplexity", "codes/dead_codes"} <= set(history.history)
    usage = callback.histograms[f"inner/{layer.name}"]
    assert usage.shape == layout
    # The window (1000 steps) holds all 6 steps.
    np.testing.assert_array_equal(usage.sum(axis=-1), [per_group] * layout[0])
    assert history.history["codes/dead_codes"][-1] == int(np.sum(usage == 0))
    # Nothing of the layer is left changed: weights, config, call, saving.
    assert [w.path for w in model.weights] == weights_before
    assert layer.get_config() == config_before
    assert "call" not in vars(layer)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(
        to_numpy(loaded(x, training=False)), to_numpy(model(x, training=False)), rtol=1e-6
    )


def _trained_weights(with_callback):
    keras.utils.set_random_seed(3)
    inputs = keras.Input((6, 4))
    h = keras.layers.Dense(4)(inputs)
    h = GumbelVectorQuantizer(2, 8, 4, seed=7)(h)
    model = keras.Model(inputs, keras.layers.Dense(4)(h))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(32, 6, 4)).astype("float32")
    callbacks = [CodeUsage(update_freq=1)] if with_callback else []
    model.fit(x, x, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=callbacks)
    return [to_numpy(w) for w in model.weights]


def test_training_is_unchanged_by_the_callback():
    # Same seeds, same data: the counting draws no random numbers and adds
    # no gradient, so the weights after training are identical.
    for with_cb, without in zip(_trained_weights(True), _trained_weights(False), strict=True):
        np.testing.assert_array_equal(with_cb, without)


def test_several_layers_get_keys_by_path_and_fit_can_be_repeated():
    inputs = keras.Input((4, K))
    a = GumbelSoftmax(hard=True, seed=0, name="first")(keras.layers.Dense(K)(inputs))
    b = GumbelSigmoid(hard=True, seed=0, name="second")(keras.layers.Dense(3)(a))
    model = keras.Model(inputs, b)
    model.compile(optimizer="adam", loss="mse")
    x = np.random.default_rng(0).normal(size=(16, 4, K)).astype("float32")
    y = np.zeros((16, 4, 3), "float32")
    # A first fit without the callback traces a train function without counting.
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    callback = CodeUsage(update_freq=1)
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[callback])
    for path in ("first", "second"):
        assert f"codes/{path}/perplexity" in history.history
        assert f"codes/{path}/dead_codes" in history.history
    # The reused train function was rebuilt: it counted 16 rows of 4 positions.
    assert callback.histograms["first"].sum() == 16 * 4
    # `layers=` picks one layer; a later fit without the callback counts nothing.
    only = CodeUsage(update_freq=1, layers=["second"])
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, callbacks=[only])
    assert "codes/perplexity" in history.history
    assert set(only.histograms) == {"second"}
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert not any("code_usage" in w.path for w in model.weights)


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TensorBoard event files need TensorFlow")
def test_tensorboard_event_files_hold_scalars_and_histograms(tmp_path):
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    x = _choosing([0, 3] * 16)
    model = _fixed_logits_model((K,))
    callback = CodeUsage(update_freq=2, window=2, log_dir=tmp_path)
    model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    accumulator = event_accumulator.EventAccumulator(
        str(tmp_path / "code_usage"), size_guidance={event_accumulator.TENSORS: 0}
    )
    accumulator.Reload()
    tags = accumulator.Tags()["tensors"]
    assert {"codes/perplexity", "codes/dead_codes", "codes/usage/group_0"} <= set(tags)
    perplexity = accumulator.Tensors("codes/perplexity")
    assert [event.step for event in perplexity] == [2, 4]
    assert [float(tf.make_ndarray(e.tensor_proto)) for e in perplexity] == [2.0, 2.0]
    dead = accumulator.Tensors("codes/dead_codes")
    assert [float(tf.make_ndarray(e.tensor_proto)) for e in dead] == [K - 2, K - 2]
    histogram = tf.make_ndarray(accumulator.Tensors("codes/usage/group_0")[-1].tensor_proto)
    assert histogram.shape == (K, 3)
    expected = np.zeros(K)
    expected[[0, 3]] = 8
    np.testing.assert_array_equal(histogram[:, 2], expected)
    np.testing.assert_array_equal(histogram[:, 0], np.arange(K))


def test_validation_messages():
    with pytest.raises(ValueError, match="argument `update_freq`. Expected an integer >= 1"):
        CodeUsage(update_freq=0)
    with pytest.raises(ValueError, match="argument `window`. Expected an integer >= 1"):
        CodeUsage(window=1.5)
    with pytest.raises(ValueError, match="argument `dead_code_window`"):
        CodeUsage(dead_code_window=-1)
    with pytest.raises(ValueError, match="argument `per_group`. Expected a boolean"):
        CodeUsage(per_group=1)
    with pytest.raises(ValueError, match="argument `prefix`"):
        CodeUsage(prefix="")


def test_a_model_without_codes_layers_is_an_error():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 3), "float32")
    with pytest.raises(ValueError, match="found no layer with discrete codes"):
        model.fit(x, np.zeros((4, 2)), verbose=0, callbacks=[CodeUsage()])
    model = _fixed_logits_model((K,))
    with pytest.raises(ValueError, match="'dense' matches 0 codes layers"):
        model.fit(
            _choosing([0]), _choosing([0]), verbose=0, callbacks=[CodeUsage(layers=["dense"])]
        )


def test_group_layout():
    assert code_usage._group_layout((None, 20, 10), None) == (20, 10)
    assert code_usage._group_layout((None, None, 10), None) == (1, 10)
    assert code_usage._group_layout((None, 28, 2, 16), 1) == (2, 16)
    assert code_usage._group_layout((None, 5, 5), None) == (5, 5)
    with pytest.raises(ValueError, match="Expected 1 known group axes"):
        code_usage._group_layout((None, None, 16), 1)


def test_docstring_example_runs():
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(CodeUsage, "CodeUsage", globs={}):
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    assert runner.summarize(verbose=False).attempted > 0


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.distribute")
def test_mirrored_strategy_counts_every_replica_once():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(
        ["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        model = _fixed_logits_model((K,))
    x = _choosing([0, 3] * 32)
    callback = CodeUsage(update_freq=2, window=4)
    history = model.fit(
        x, x, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[callback]
    )
    # 4 steps of 16 rows, each batch split over the two replicas.
    expected = np.zeros((1, K))
    expected[0, [0, 3]] = 32
    np.testing.assert_array_equal(callback.histograms["codes"], expected)
    assert history.history["codes/perplexity"] == [2.0]
