"""NVIL's variance reduction in the score-function family: baselines and normalization.

The enumerable problem: one example's logits (2 categorical variables of 3
classes, 9 configurations) shared by 4 inputs `x_k`, whose objectives
`f(z, x_k) = g(z) + o_k` differ by offsets `o_k` of -15, -5, 5 and 15
nats, the way a VAE's reconstruction term differs between digits. The
offsets do not depend on `z`, so every input has the same exact gradient
(`diagnostics.exact_gradient` of `g`), and a constant baseline cannot
remove them: only an input-dependent one can. Estimates are single-sample
gradients of the surrogate with respect to each row's logits, 20,000 per
estimator in batches of 2,000 rows cycling over the inputs.
"""

import numpy as np
import pytest
from testing import BACKEND

pytestmark = pytest.mark.skipif(BACKEND != "tensorflow", reason="gradients via tf.GradientTape")

if BACKEND == "tensorflow":
    import keras
    import tensorflow as tf

    from keras_gumbel import estimators
    from keras_gumbel.diagnostics import bonferroni_bound
    from keras_gumbel.diagnostics import configurations
    from keras_gumbel.diagnostics import exact_gradient
    from keras_gumbel.models import CategoricalVAE
    from keras_gumbel.models import StochasticBinaryNetwork

BATCH = 2000
BATCHES = 10
OFFSETS = np.array([-15.0, -5.0, 5.0, 15.0], "float32")
ALPHA = 1e-3


def _problem():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 3)).astype("float32")
    weights = (0.7 * rng.normal(size=(6, 5))).astype("float32")
    bias = rng.normal(size=5).astype("float32")
    target = (rng.uniform(size=5) > 0.5).astype("float32")
    inputs = (rng.uniform(size=(4, 8)) > 0.5).astype("float32")

    def g(z):
        # A tiny decoder's Bernoulli NLL of a fixed target: not quadratic.
        h = tf.reshape(tf.cast(z, tf.float32), [tf.shape(z)[0], 6]) @ weights + bias
        labels = tf.broadcast_to(target, tf.shape(h))
        return tf.reduce_sum(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=2.0 * h), axis=-1
        )

    return logits, g, inputs


class _Run:
    """Draws batches of estimates; optionally trains the input baseline."""

    def __init__(self, estimator, gain=1.0, seed=0):
        self.logits, self.g, inputs = _problem()
        self.estimator = estimators.get(estimator)
        self.estimator.build_baseline((None, 8), self.logits.shape, "categorical")
        index = np.arange(BATCH) % len(OFFSETS)
        x = tf.constant(inputs[index])
        offset = tf.constant(OFFSETS[index])
        logits = tf.broadcast_to(tf.constant(self.logits), (BATCH, 2, 3))
        generator = keras.random.SeedGenerator(seed)
        weights = self.estimator.trainable_weights
        optimizer = keras.optimizers.Adam(0.03)
        if weights:
            optimizer.build(weights)

        def objective(v):
            return gain * (self.g(v) + offset)

        @tf.function
        def step(train):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(logits)
                z = self.estimator.sample(logits, "categorical", 1.0, seed=generator)
                surrogate = self.estimator.surrogate(objective, z, logits, "categorical", inputs=x)
                total = tf.reduce_sum(surrogate)
            if train and weights:
                gradients = tape.gradient(total, weights)
                optimizer.apply_gradients(zip(gradients, weights, strict=True))
            # Each row's logits only reach its own sample: the gradient of
            # the sum holds the per-row estimates.
            return tape.gradient(total, logits), self.estimator.signal_scale.value

        self._step = step

    def train(self, steps):
        """Trains b for `steps` batches; the running variance after each."""
        variances = []
        for _ in range(steps):
            self._step(True)
            variances.append(float(self.estimator.signal_variance.numpy()))
        return variances

    def estimates(self, offset=0.0):
        """`BATCHES * BATCH` estimates, each `(g - offset) / s + offset` with `s` its batch's scale.

        `offset` is a part of the estimate that normalization leaves alone.
        """
        self._step(False)  # Statistics from earlier batches, as in training.
        out = []
        for _ in range(BATCHES):
            g, scale = self._step(False)
            assert 0.0 < float(scale) <= 1.0
            out.append((g.numpy().astype("float64") - offset) / float(scale) + offset)
        return np.concatenate(out)


def _z_scores(samples, exact):
    mean = samples.mean(axis=0)
    se = samples.std(axis=0, ddof=1) / np.sqrt(len(samples))
    return (mean - exact) / se, se


def _exact(gain=1.0):
    logits, g, _ = _problem()
    return gain * exact_gradient(logits, g, "categorical")[1]


def _total_variance(samples):
    return float(samples.var(axis=0, ddof=1).sum())


@pytest.fixture(scope="module")
def trained_sf():
    run = _Run({"class_name": "score_function", "config": {"normalize": False}})
    variances = run.train(300)
    return run, variances


def _variance_of_g():
    """`Var[g(z)]` under q, exactly (about 4 nats^2)."""
    logits, g, _ = _problem()
    z = configurations(logits.shape, "categorical")
    q = np.exp(np.sum(z * (logits - np.log(np.exp(logits).sum(-1, keepdims=True))), (1, 2)))
    values = g(tf.constant(z)).numpy()
    return float(q @ (values - q @ values) ** 2)


def test_the_input_baseline_learns_the_offsets(trained_sf):
    run, variances = trained_sf
    # The running variance of `f - b(x) - c` starts at the offsets'
    # variance plus g's (125 + 4 nats^2) and falls to g's own, the least
    # any function of x leaves: b(x) has learned o_k up to a constant.
    # Tolerance: 0.5 nats^2 for b's remaining error and the moving
    # average's noise (measured: 4.05 against 4.03).
    floor = _variance_of_g()
    assert variances[0] > 100.0
    assert floor <= np.mean(variances[-20:]) < floor + 0.5
    prediction = run.estimator.predict_baseline(tf.constant(_problem()[2]), tf.zeros((4,)))
    spread = prediction.numpy() - prediction.numpy().mean()
    # Measured within 0.2 nats of the offsets' spread.
    np.testing.assert_allclose(spread, OFFSETS - OFFSETS.mean(), atol=0.5)


@pytest.mark.parametrize(
    "name, normalize",
    [("score_function", False), ("score_function", True), ("muprop", False), ("muprop", True)],
)
def test_estimates_with_both_baselines_are_unbiased_up_to_the_scale(name, normalize):
    # b(x) does not depend on the sample, c and s come from earlier
    # batches: each estimate divided by its batch's s (1 without
    # normalization) is unbiased. Every coordinate's z-score stays below
    # the Bonferroni bound for a family-wise level of 1e-3 (3.76 for 6).
    # (MuProp's normalization scales its mean-field term with its
    # correction; scaling the correction alone would bias it toward the
    # mean-field gradient.) The objective is scaled by 4 so that
    # normalization is active.
    run = _Run({"class_name": name, "config": {"normalize": normalize}}, gain=4.0)
    run.train(150)
    exact = _exact(gain=4.0)
    samples = run.estimates()
    z, se = _z_scores(samples, exact)
    assert np.max(np.abs(z)) < bonferroni_bound(exact.size, ALPHA), z
    # The test resolves the gradient: its standard error is small next to it.
    assert np.linalg.norm(se) < 0.1 * np.linalg.norm(exact)
    if normalize:
        # Normalization was active (measured s: 0.13).
        assert float(run.estimator.signal_scale.numpy()) < 0.8


def _muprop_expansion_gradient(gain):
    """`d/dl [f'(mu) . mu(l)]` with `f'(mu)` held fixed: MuProp's pathwise term."""
    logits, g, _ = _problem()
    logits = tf.constant(logits)
    with tf.GradientTape() as tape:
        tape.watch(logits)
        mu = tf.nn.softmax(logits)
        with tf.GradientTape() as inner:
            inner.watch(mu)
            value = gain * g(mu[None])
        slope = tf.stop_gradient(inner.gradient(value, mu))
        expansion = tf.reduce_sum(slope * mu)
    return tape.gradient(expansion, logits).numpy().astype("float64")


def test_muprop_can_normalize_its_learning_signal_alone():
    # With `scale_expansion=False` normalization divides only the learning
    # signal, as NVIL does: the estimate is `s * (residual term) + D` with
    # `D` the expansion's pathwise term (the same for every sample). Undoing
    # that form, `(g - D) / s + D`, is unbiased (Bonferroni bound as above);
    # reading it as `s * (unbiased estimate)`, as for `scale_expansion=True`,
    # is not: `D / s - D` is many standard errors.
    config = {"normalize": True, "scale_expansion": False}
    run = _Run({"class_name": "muprop", "config": config}, gain=4.0)
    run.train(150)
    assert float(run.estimator.signal_scale.numpy()) < 0.8  # Normalization is active.
    exact = _exact(gain=4.0)
    expansion = _muprop_expansion_gradient(gain=4.0)
    bound = bonferroni_bound(exact.size, ALPHA)
    z, se = _z_scores(run.estimates(offset=expansion), exact)
    assert np.max(np.abs(z)) < bound, z
    assert np.linalg.norm(se) < 0.1 * np.linalg.norm(exact)
    z, _ = _z_scores(run.estimates(), exact)
    assert np.max(np.abs(z)) > 3 * bound, z


def test_the_input_baseline_reduces_the_variance(trained_sf):
    run, _ = trained_sf
    with_input = run.estimates()
    constant = _Run(
        {"class_name": "score_function", "config": {"normalize": False, "input_baseline": False}}
    )
    constant.train(150)
    without_input = constant.estimates()
    # The constant baseline leaves the offsets in the learning signal:
    # E[(o - c)^2] is 125 against g's variance of 4, so the ratio of total
    # variances is about 4 / 129 = 0.03 (measured 0.025); the bound 0.05
    # is a margin of 2.
    ratio = _total_variance(with_input) / _total_variance(without_input)
    assert ratio < 0.05, ratio


def test_without_the_input_baseline_the_offsets_do_not_bias_either():
    # The control of the test above is itself a correct estimator.
    run = _Run(
        {"class_name": "score_function", "config": {"normalize": False, "input_baseline": False}}
    )
    run.train(20)
    exact = _exact()
    z, _ = _z_scores(run.estimates(), exact)
    assert np.max(np.abs(z)) < bonferroni_bound(exact.size, ALPHA), z


def test_scale_gradient_keeps_the_value_and_scales_the_gradient():
    estimator = estimators.ScoreFunctionEstimator(decay=0.5)
    estimator.standardize(tf.constant([0.0, 8.0]))  # Batch variance 16: s = 1/4.
    assert float(estimator.signal_scale.numpy()) == 0.25
    x = tf.constant([[1.5, -2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = estimator.scale_gradient(x)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0.25, 0.25]])
    plain = estimators.ScoreFunctionEstimator(normalize=False)
    assert plain.scale_gradient(x) is x
    assert estimators.get("gumbel_softmax").scale_gradient(x) is x
    # MuProp's whole estimate is normalized, so the KL term beside it is too.
    muprop = estimators.MuPropEstimator(decay=0.5)
    muprop.standardize(tf.constant([0.0, 8.0]))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = muprop.scale_gradient(x)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), [[0.25, 0.25]])
    # Unless only its learning signal is normalized: then the KL keeps its
    # full gradient, like the expansion's pathwise term.
    signal_only = estimators.MuPropEstimator(decay=0.5, scale_expansion=False)
    signal_only.standardize(tf.constant([0.0, 8.0]))
    assert signal_only.scale_gradient(x) is x


def _bits(num, seed):
    """Binary rows of 36 pixels, alternately sparse (10% ones) and dense (90%).

    With the decoder's output bias at 2 (pixels mostly predicted on), the
    reconstruction NLL of the two halves differs by tens of nats: a learning
    signal whose spread normalization divides.
    """
    density = np.where(np.arange(num) % 2, 0.9, 0.1)[:, None]
    return (np.random.default_rng(seed).uniform(size=(num, 36)) < density).astype("float32")


def _vae(estimator, bits):
    model = CategoricalVAE(
        num_vars=3, num_classes=4, encoder_units=(16,), decoder_units=(16,), estimator=estimator,
        seed=0,
    )  # fmt: skip
    model(bits[:2])
    model.output_layer.bias.assign(np.full(36, 2.0, "float32"))
    return model


def _seeded_vae(normalize, bits, name="score_function"):
    keras.utils.set_random_seed(3)
    model = _vae({"class_name": name, "config": {"normalize": normalize}}, bits)
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    return model


@pytest.mark.parametrize("name", ["score_function", "muprop"])
def test_normalization_scales_the_whole_encoder_gradient_in_a_vae(name):
    # One SGD step of learning rate 1 moves each weight by its gradient.
    # With and without normalization (same weights, same samples), the
    # decoder's step is the same and the encoder's, KL term included, is
    # s times smaller: normalization is a step size for the inference
    # network, not a reweighting of its objective toward the KL term.
    bits = _bits(32, seed=0)
    steps = {}
    for normalize in (False, True):
        model = _seeded_vae(normalize, bits, name)
        if name == "muprop":
            # MuProp's residual spreads over less than a nat on these bits:
            # earlier steps' statistics with a spread of 10 set s = 1/10.
            model.sampler._estimator.signal_variance.assign(100.0)
            model.sampler._estimator.num_updates.assign(1.0)
        before = [w.numpy().copy() for w in model.trainable_weights]
        model.fit(bits, batch_size=32, epochs=1, shuffle=False, verbose=0)
        steps[normalize] = [
            (w.path.split("/", 1)[-1], w.numpy() - b)
            for w, b in zip(model.trainable_weights, before, strict=True)
        ]
        scale = float(model.sampler._estimator.signal_scale.numpy())
    assert 0.0 < scale < 0.2  # The batch's signal spreads over tens of nats.
    scaled = ("encoder/", "latent_logits/", f"{name}/")  # b's loss is scaled too.
    for (path, plain), (_, normalized) in zip(steps[False], steps[True], strict=True):
        expected = scale * plain if path.startswith(scaled) else plain
        np.testing.assert_allclose(normalized, expected, rtol=2e-3, atol=1e-6, err_msg=path)
    assert {path.split("/")[0] for path, _ in steps[True]} == {
        "encoder", "latent_logits", name, "decoder", "pixel_logits"
    }  # fmt: skip


@pytest.mark.parametrize("jit_compile", [False, True])
def test_running_statistics_and_baseline_train_in_a_compiled_fit(jit_compile):
    bits = _bits(64, seed=1)
    model = _vae("score_function", bits)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit_compile)
    estimator = model.sampler._estimator
    hidden = estimator.baseline_hidden.kernel.numpy().copy()
    model.fit(bits, batch_size=16, epochs=2, shuffle=False, verbose=0)
    # Eight compiled steps: each folded its batch into the statistics.
    assert float(estimator.num_updates.numpy()) == 8.0
    assert int(model.optimizer.iterations.numpy()) == 8
    assert float(estimator.signal_variance.numpy()) > 1.0
    assert 0.0 < float(estimator.signal_scale.numpy()) < 1.0
    assert not np.array_equal(estimator.baseline_hidden.kernel.numpy(), hidden)
    # b's weights are the model's, trained by its optimizer.
    paths = {w.path for w in model.trainable_weights}
    assert {w.path for w in estimator.trainable_weights} <= paths
    assert len(estimator.trainable_weights) == 4


def test_a_model_saves_and_restores_the_baseline_and_statistics(tmp_path):
    bits = (np.random.default_rng(2).uniform(size=(48, 36)) > 0.5).astype("float32")
    model = CategoricalVAE(
        num_vars=3, num_classes=4, encoder_units=(16,), decoder_units=(16,),
        estimator="darn", seed=0,
    )  # fmt: skip
    model.compile(optimizer="adam")
    model.fit(bits, batch_size=16, epochs=1, verbose=0)
    estimator = model.sampler._estimator
    # DARN's baseline has one output per categorical variable.
    assert tuple(estimator.baseline_output.kernel.shape) == (100, 3)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    restored = loaded.sampler._estimator
    for a, b in zip(estimator.weights, restored.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert restored.get_config() == estimator.get_config()
    # Training goes on from the restored state.
    loaded.fit(bits, batch_size=16, epochs=1, verbose=0)
    assert float(restored.num_updates.numpy()) == 6.0
    # Weights files (checkpoints) too.
    model.save_weights(tmp_path / "m.weights.h5")
    fresh = CategoricalVAE(
        num_vars=3, num_classes=4, encoder_units=(16,), decoder_units=(16,),
        estimator="darn", seed=0,
    )  # fmt: skip
    fresh(bits[:2])
    fresh.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(
        fresh.sampler._estimator.baseline_hidden.kernel.numpy(),
        estimator.baseline_hidden.kernel.numpy(),
    )


def test_every_sbn_layer_has_its_own_baseline_on_the_upper_half():
    bits = (np.random.default_rng(3).uniform(size=(32, 36)) > 0.5).astype("float32")
    model = StochasticBinaryNetwork("bernoulli", num_vars=6, estimator="muprop", seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    model.fit(bits[:, :18], bits[:, 18:], batch_size=16, epochs=1, verbose=0)
    kernels = [s._estimator.baseline_hidden.kernel for s in model.samplers]
    assert [tuple(k.shape) for k in kernels] == [(18, 100), (18, 100)]
    assert kernels[0] is not kernels[1]


def test_turning_the_input_baseline_off_and_config_round_trip():
    config = {"class_name": "muprop", "config": {"input_baseline": False, "baseline_units": 7}}
    estimator = estimators.get(config)
    assert estimators.get(estimators.serialize(estimator)).get_config() == estimator.get_config()
    estimator.build_baseline((None, 5), (3, 4), "categorical")
    assert estimator.trainable_weights == []
    on = estimators.get({"class_name": "score_function", "config": {"baseline_units": 7}})
    on.build_baseline((None, 5), (3, 4), "categorical")
    assert [tuple(w.shape) for w in on.trainable_weights] == [(5, 7), (7,), (7, 1), (1,)]
    assert estimators.get("darn").input_baseline  # On by default.


@pytest.mark.parametrize(
    "kwargs, error, pattern",
    [
        ({"input_baseline": 1}, TypeError, r"`input_baseline`.*Received: input_baseline=1"),
        ({"baseline_units": 0}, ValueError, r"`baseline_units`.*>= 1.*Received: baseline_units=0"),
    ],
)
def test_bad_baseline_arguments(kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        estimators.ScoreFunctionEstimator(**kwargs)


def test_a_resumed_run_continues_the_baseline_and_statistics(tmp_path):
    from keras_gumbel.training import RunConfig
    from keras_gumbel.training import restore
    from keras_gumbel.training import train

    # 3,500 training digits of the shipped sample in batches of 500: 7 steps an epoch.
    config = RunConfig(epochs=1, batch_size=500, num_vars=8, estimator="score_function")
    run = tmp_path / "run"
    train(config, run, verbose=0, evaluate_after=False)
    model, state = restore(run)
    first = model.sampler._estimator
    assert state["epoch"] == 1 and float(first.num_updates.numpy()) == 7.0
    kernel = first.baseline_hidden.kernel.numpy()
    keras.backend.clear_session()
    train(config.replace(epochs=2), run, resume=True, verbose=0, evaluate_after=False)
    model, state = restore(run)
    second = model.sampler._estimator
    # The second epoch started from the first one's statistics and baseline.
    assert state["epoch"] == 2 and float(second.num_updates.numpy()) == 14.0
    # Adam (learning rate 1e-3) moves a weight by at most about 1e-3 a step:
    # 7 steps stay below 0.02, while newly initialized weights (Glorot,
    # limit 0.08) would differ from the restored ones by up to 0.16.
    moved = np.abs(second.baseline_hidden.kernel.numpy() - kernel).max()
    assert 0.0 < moved < 0.02
