"""The training part of `performance.py`: `CategoricalVAE` steps per second.

`CategoricalVAE.fit` with a `TemperatureScheduler` (Keras's default
`jit_compile="auto"`, XLA on, XLA off) against hand-written TensorFlow
training loops of the same network, loss and optimizer, and the same in
eager PyTorch.
"""

import math
import time

import numpy as np

from benchmarks.performance.perf_timing import TINY
from benchmarks.performance.perf_timing import add_ratios
from benchmarks.performance.perf_timing import installed
from benchmarks.performance.perf_timing import interleaved
from benchmarks.performance.perf_timing import mib
from benchmarks.performance.perf_timing import ms
from benchmarks.performance.perf_timing import not_installed
from benchmarks.performance.perf_timing import untested

FIT_HAND_TARGET = 0.95
FIT_TORCH_TARGET = 1.0


# Samplers: each side as a function that runs and times some steps.


def training_images(count, seed):
    """Synthetic binarized images: random bits, 784 pixels each."""
    rng = np.random.default_rng(seed)
    return (rng.random((count, 784)) < 0.3).astype(np.float32)


def temperature_schedule():
    from keras_gumbel import schedules

    return schedules.ExponentialDecay(initial=1.0, rate=1e-4, minimum=0.5, interval=500)


def fit_sampler(images, batch, steps, warm, jit_compile="auto"):
    """`CategoricalVAE.fit` with a `TemperatureScheduler`: seconds per step."""
    import keras

    from keras_gumbel import datasets
    from keras_gumbel.callbacks import TemperatureScheduler
    from keras_gumbel.models import CategoricalVAE

    keras.utils.set_random_seed(0)
    model = CategoricalVAE(seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=jit_compile)
    dataset = datasets.make_dataset(
        images, batch_size=batch, seed=0, repeat=True, drop_remainder=True
    )
    scheduler = TemperatureScheduler(temperature_schedule())
    clock = FitClock(model, warm, steps)

    def sample():
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=warm + steps,
            callbacks=[scheduler, clock.callback],
            verbose=0,
            shuffle=False,  # the pipeline shuffles; Keras would warn that it ignores this
        )
        return clock.seconds() / steps

    sample.model = model
    return sample


class FitClock:
    """Times `fit` from the start of step `warm` to the end of step `warm + steps - 1`.

    The end of a step is its batch-end callback, where Keras has already
    converted the step's logs to Python numbers (so the step has finished);
    the epoch-end work after the last step is not timed. On the TensorFlow
    backend Keras calls batch-end callbacks on the main thread.
    """

    def __init__(self, model, warm, steps):
        import keras

        clock = self

        class Clock(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                if batch == warm:
                    int(model.optimizer.iterations.numpy())  # the warm-up steps are done
                    clock.start = time.perf_counter()

            def on_train_batch_end(self, batch, logs=None):
                if batch == warm + steps - 1:
                    clock.end = time.perf_counter()

        self.callback = Clock()
        self.start = self.end = None

    def seconds(self):
        return self.end - self.start


def dense_parameters(sizes, seed):
    """Glorot-uniform kernels and zero biases, as Keras `Dense` initializes them."""
    import keras
    import tensorflow as tf

    params = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        kernel = keras.initializers.GlorotUniform(seed=seed + i)((n_in, n_out))
        params += [tf.Variable(kernel), tf.Variable(tf.zeros([n_out]))]
    return params


def tf_mlp(h, params):
    """ReLU MLP with a linear last layer."""
    import tensorflow as tf

    layers = len(params) // 2
    for i in range(layers):
        h = tf.matmul(h, params[2 * i]) + params[2 * i + 1]
        if i < layers - 1:
            h = tf.nn.relu(h)
    return h


class HandVAE:
    """`CategoricalVAE()`'s network and loss as plain variables and TensorFlow ops.

    The default model: encoder 784-512-256-(20 x 10) and decoder
    (20 x 10)-256-512-784, ReLU, Glorot-uniform kernels, zero biases; the
    Gumbel-Softmax sample `softmax((logits + g) / tau)`, tau a non-trainable
    variable; the loss `mean(-log p(x | y) + KL(q(z | x) || uniform))`.
    """

    def __init__(self, num_vars=20, num_classes=10, input_dim=784, seed=0):
        import tensorflow as tf

        self.num_vars, self.num_classes = num_vars, num_classes
        latent = num_vars * num_classes
        self.encoder = dense_parameters([input_dim, 512, 256, latent], seed=seed)
        self.decoder = dense_parameters([latent, 256, 512, input_dim], seed=seed + 10)
        self.variables = self.encoder + self.decoder
        self.temperature = tf.Variable(1.0, trainable=False)

    def loss(self, x, noise):
        """The training loss of batch `x`; `noise(shape)` draws uniforms on [tiny, 1)."""
        import tensorflow as tf

        logits = tf.reshape(tf_mlp(x, self.encoder), [-1, self.num_vars, self.num_classes])
        u = noise(tf.shape(logits))
        y = tf.nn.softmax((logits - tf.math.log(-tf.math.log(u))) / self.temperature)
        x_logits = tf_mlp(tf.reshape(y, [-1, self.num_vars * self.num_classes]), self.decoder)
        # `sigmoid_cross_entropy_with_logits` in three operations; the model
        # computes it this way too, so neither side gains from the formula.
        nll = tf.reduce_sum(tf.nn.softplus(x_logits) - x * x_logits, axis=1)
        log_q = tf.nn.log_softmax(logits)
        kl = tf.reduce_sum(tf.exp(log_q) * (log_q + math.log(self.num_classes)), axis=[1, 2])
        return tf.reduce_mean(nll + kl)


HAND_XLA = ("none", "update", "step")


def hand_train_step(vae, optimizer, xla="none", noise=None):
    """A `tf.function` training step of `vae` on a batch; returns the loss.

    Args:
        vae: A `HandVAE`.
        optimizer: A Keras optimizer.
        xla: "none" (no XLA), "update" (the optimizer update alone compiled
            with XLA in a nested function, as the library's models do on a
            CPU) or "step" (the whole step compiled with XLA).
        noise: Optional function of a shape tensor returning uniform noise
            on [tiny, 1); defaults to `tf.random.uniform`.
    """
    import tensorflow as tf

    if noise is None:

        def noise(shape):
            return tf.random.uniform(shape, minval=TINY, maxval=1.0)

    def apply(gradients):
        optimizer.apply_gradients(zip(gradients, vae.variables, strict=True))

    if xla == "update":
        optimizer.build(vae.variables)  # XLA functions cannot create variables
        apply = tf.function(apply, jit_compile=True)

    @tf.function(jit_compile=xla == "step")
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = vae.loss(x, noise)
        apply(tape.gradient(loss, vae.variables))
        return loss

    return train_step


def hand_dataset(images, batch, seed):
    """The hand loop's input: images in memory, reshuffled every pass, one gather per batch.

    Each pass draws one permutation of the indices (a single op) and cuts it
    into batches (the last partial one dropped); each step gathers its batch
    from the images. The same work as `from_tensor_slices(x).shuffle(N)
    .batch(b, drop_remainder=True)`, without the per-example elements that
    made that pipeline cost about 2 ms of CPU per batch of 1000 on a 2-core
    machine (0.4 ms this way).
    """
    import tensorflow as tf

    x = tf.constant(images)
    count = len(images) // batch

    def permutation(_):
        indices = tf.random.shuffle(tf.range(len(images)), seed=seed)
        return tf.reshape(indices[: count * batch], [count, batch])

    return (
        tf.data.Dataset.from_tensors(0)
        .repeat()
        .map(permutation)
        .unbatch()
        .map(lambda indices: tf.gather(x, indices))
        .prefetch(tf.data.AUTOTUNE)
    )


def tf_hand_sampler(images, batch, steps, warm, xla="none"):
    """A hand-written training loop of `CategoricalVAE()`: seconds per step.

    `hand_train_step` with Keras's Adam over `hand_dataset`, the temperature
    set before every step as `TemperatureScheduler` sets it (assigned only
    when the schedule's value changes).
    """
    import keras

    vae = HandVAE()
    train_step = hand_train_step(vae, keras.optimizers.Adam(1e-3), xla=xla)
    iterator = iter(hand_dataset(images, batch, seed=0))
    schedule = temperature_schedule()
    state = {"step": 0, "tau": None}

    def run(count):
        for _ in range(count):
            value = schedule(state["step"])
            if value != state["tau"]:
                vae.temperature.assign(value)
                state["tau"] = value
            loss = train_step(next(iterator))
            state["step"] += 1
        return float(loss)

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


def train_step_sampler(model, images, batch, steps, warm):
    """Diagnostic: the model's own `train_step` driven like the hand loop (no `fit`)."""
    import tensorflow as tf

    from keras_gumbel import datasets

    train_step = tf.function(model.train_step)
    dataset = datasets.make_dataset(
        images, batch_size=batch, seed=1, repeat=True, drop_remainder=True
    )
    iterator = iter(dataset)

    def run(count):
        for _ in range(count):
            logs = train_step(next(iterator))
        return float(logs["loss"])

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


def torch_sampler(images, batch, steps, warm, num_vars=20, num_classes=10):
    """The same network and loss in PyTorch (eager): seconds per step."""
    import torch
    from torch import nn
    from torch.nn import functional

    torch.manual_seed(0)
    encoder = nn.Sequential(
        nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU(),
        nn.Linear(256, num_vars * num_classes),
    )  # fmt: skip
    decoder = nn.Sequential(
        nn.Linear(num_vars * num_classes, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
        nn.Linear(512, 784),
    )  # fmt: skip
    params = list(encoder.parameters()) + list(decoder.parameters())
    # Keras's Adam epsilon, so both take the same steps.
    optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-7)
    log_k = math.log(num_classes)
    count = len(images) // batch
    batches = [torch.from_numpy(images[i * batch : (i + 1) * batch]) for i in range(count)]
    schedule = temperature_schedule()
    state = {"step": 0}

    def train_step(x):
        logits = encoder(x).view(-1, num_vars, num_classes)
        y = functional.gumbel_softmax(logits, tau=schedule(state["step"]), dim=-1)
        x_logits = decoder(y.view(-1, num_vars * num_classes))
        nll = functional.binary_cross_entropy_with_logits(x_logits, x, reduction="none")
        log_q = functional.log_softmax(logits, dim=-1)
        kl = (log_q.exp() * (log_q + log_k)).sum(dim=(1, 2))
        loss = (nll.sum(dim=1) + kl).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        return loss

    def run(n):
        for _ in range(n):
            loss = train_step(batches[state["step"] % count])
        return loss.item()

    def sample():
        run(warm)
        start = time.perf_counter()
        run(steps)
        return (time.perf_counter() - start) / steps

    return sample


# The part.


def run_training(settings, peak_rss):
    images = training_images(settings.train_images, seed=0)
    rows = []
    for batch, steps, reps in zip(
        settings.train_batches, settings.train_steps, settings.train_reps, strict=True
    ):
        warm = settings.train_warm_steps
        fit = fit_sampler(images, batch, steps, warm)
        samplers = {
            "keras_gumbel_fit": fit,
            # Keras's "auto" leaves XLA off on CPUs, where the models compile
            # only the optimizer update; the same fit with XLA on and off.
            "keras_gumbel_fit_xla": fit_sampler(images, batch, steps, warm, jit_compile=True),
            "keras_gumbel_fit_no_xla": fit_sampler(images, batch, steps, warm, jit_compile=False),
            # The hand-written floor, and the same with XLA where each fit has it.
            "tf_hand_loop": tf_hand_sampler(images, batch, steps, warm),
            "tf_hand_loop_xla_update": tf_hand_sampler(images, batch, steps, warm, xla="update"),
            "tf_hand_loop_xla": tf_hand_sampler(images, batch, steps, warm, xla="step"),
            "keras_gumbel_train_step": train_step_sampler(fit.model, images, batch, steps, warm),
        }
        skipped = {}
        if installed("torch"):
            samplers["torch"] = torch_sampler(images, batch, steps, warm)
        else:
            skipped["torch"] = not_installed("torch")
        jit_compile = fit.model.jit_compile
        for sample in samplers.values():  # trace and warm up every side
            sample()
        sides = interleaved(samplers, reps, peak_rss)
        sides.update(skipped)
        add_ratios(sides, "tf_hand_loop")
        for side in sides.values():
            if side.get("status") == "ok":
                side["steps_per_s"] = 1.0 / side["median_s"]
        row = {
            "batch": batch,
            "timed_steps": steps,
            "warm_steps_per_round": warm,
            "fit_jit_compile": bool(jit_compile),
            "sides": sides,
            "fit_speed_vs_hand": speed_ratio(sides, "keras_gumbel_fit", "tf_hand_loop"),
            "fit_speed_vs_hand_xla_update": speed_ratio(
                sides, "keras_gumbel_fit", "tf_hand_loop_xla_update"
            ),
            "fit_speed_vs_torch": speed_ratio(sides, "keras_gumbel_fit", "torch"),
            "fit_xla_speed_vs_hand": speed_ratio(sides, "keras_gumbel_fit_xla", "tf_hand_loop"),
            "fit_xla_speed_vs_hand_xla": speed_ratio(
                sides, "keras_gumbel_fit_xla", "tf_hand_loop_xla"
            ),
            "fit_xla_speed_vs_torch": speed_ratio(sides, "keras_gumbel_fit_xla", "torch"),
            "fit_no_xla_speed_vs_hand": speed_ratio(
                sides, "keras_gumbel_fit_no_xla", "tf_hand_loop"
            ),
        }
        rows.append(row)
        print(training_progress(row), flush=True)
    return {"rows": rows, "data": f"{len(images)} synthetic images of 784 random bits (p = 0.3)"}


def speed_ratio(sides, name, reference):
    """Steps per second of `name` over those of `reference`, or None."""
    a, b = sides.get(name, {}), sides.get(reference, {})
    if a.get("status") != "ok" or b.get("status") != "ok":
        return None
    return b["median_s"] / a["median_s"]


def training_progress(row):
    parts = [
        f"{name} {side['steps_per_s']:.1f} steps/s"
        for name, side in row["sides"].items()
        if side.get("status") == "ok"
    ]
    return f"training batch {row['batch']}: " + ", ".join(parts)


# Targets and report.


def per_batch_target(name, rows, key, threshold, digits):
    """A target met when `row[key] >= threshold` for every training row."""
    return {
        "name": name,
        "measured": ", ".join(f"batch {r['batch']}: {r[key]:.{digits}f}x" for r in rows),
        "met": min(r[key] for r in rows) >= threshold,
    }


def training_targets(training):
    rows = training["rows"]
    targets = [
        per_batch_target(
            "fit steps/s >= 0.95x the hand-written tf.function loop",
            rows,
            "fit_speed_vs_hand",
            FIT_HAND_TARGET,
            digits=3,
        ),
        per_batch_target(
            "fit steps/s >= 0.95x the same loop with its optimizer update compiled by XLA "
            "(like for like)",
            rows,
            "fit_speed_vs_hand_xla_update",
            FIT_HAND_TARGET,
            digits=3,
        ),
    ]
    if all(r["fit_speed_vs_torch"] is not None for r in rows):
        targets.append(
            per_batch_target(
                "fit steps/s >= 1.0x PyTorch",
                rows,
                "fit_speed_vs_torch",
                FIT_TORCH_TARGET,
                digits=2,
            )
        )
    else:
        targets.append(untested("fit steps/s >= 1.0x PyTorch", "torch"))
    return targets


def training_markdown(training, settings):
    lines = [
        "## Training: CategoricalVAE, steps per second",
        "",
        "784-512-256 encoder, 20 x 10 categorical latents, 256-512-784 decoder, Adam (lr 1e-3), "
        "Gumbel-Softmax estimator, Bernoulli reconstruction + analytic KL to the uniform prior. "
        "`keras_gumbel_fit` is `CategoricalVAE.fit` (verbose=0) on a `tf.data` pipeline "
        "(`keras_gumbel.datasets.make_dataset`) with `TemperatureScheduler(ExponentialDecay)`, "
        'compiled with Keras\'s default `jit_compile="auto"` (on a CPU: no XLA for the '
        "step, the optimizer update compiled with XLA by the model); "
        "`keras_gumbel_fit_xla` is the same with `compile(jit_compile=True)` (the whole step "
        "in XLA), `keras_gumbel_fit_no_xla` with `compile(jit_compile=False)` (no XLA at all); "
        "`tf_hand_loop` is the floor: a hand-written `tf.function` step of the same network "
        "and loss (`tf.matmul`, `tf.random.uniform`, `softplus(l) - x * l`, analytic KL, Keras "
        "Adam; the temperature a variable set as `TemperatureScheduler` sets it) over an "
        "in-memory `tf.data` pipeline that reshuffles the images every pass (one "
        "`tf.random.shuffle` of the indices per pass, cut into batches, one `tf.gather` per "
        "batch, prefetched); `tf_hand_loop_xla_update` is "
        "the same with the optimizer update in a nested `tf.function(jit_compile=True)`, as the "
        "models run it, `tf_hand_loop_xla` the same with the whole step compiled with XLA. "
        "Like for like: `keras_gumbel_fit` against `tf_hand_loop_xla_update`, "
        "`keras_gumbel_fit_xla` against `tf_hand_loop_xla`, `keras_gumbel_fit_no_xla` "
        "against `tf_hand_loop`. `torch` is the same network and "
        "loss in eager PyTorch (`F.gumbel_softmax`, `torch.optim.Adam`, batches already in "
        "memory). `keras_gumbel_train_step` is a diagnostic, not a user path: the fit model's "
        "`train_step` under `tf.function`, called with `next(iterator)` on fit's pipeline, "
        "without `fit`; fit minus it is the per-step cost of Keras's `fit` loop. "
        f"Data: {training['data']}. Each round times the steps after "
        f"{settings.train_warm_steps} untimed warm-up steps (for `fit`, each sample is one "
        "`fit` call, whose new tf.data iterator slows its first steps; the clock runs from "
        "the start of the first timed step to the batch-end callback of the last); medians "
        "over rounds.",
        "",
        "| batch | side | steps/s | time/step | speed vs hand loop | peak RSS (MiB) | "
        "peak over start (MiB) |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in training["rows"]:
        for name, side in row["sides"].items():
            if side.get("status") != "ok":
                lines.append(f"| {row['batch']} | {name} | {side['status']} | | | | |")
                continue
            lines.append(
                f"| {row['batch']} | {name} | {side['steps_per_s']:.2f} | {ms(side['median_s'])} | "
                f"{1 / side['ratio']:.3f}x | {mib(side['peak_rss_mib'])} | "
                f"{mib(side['peak_over_start_mib'])} |"
            )
    lines += [""]
    for row in training["rows"]:
        lines.append(
            f"- batch {row['batch']}, like for like: fit / hand loop with the XLA update = "
            f"{row['fit_speed_vs_hand_xla_update']:.3f}x, jit_compile=True fit / hand loop in "
            f"XLA = {row['fit_xla_speed_vs_hand_xla']:.3f}x, jit_compile=False fit / hand loop "
            f"= {row['fit_no_xla_speed_vs_hand']:.3f}x. Against the plain hand loop: fit = "
            f"{row['fit_speed_vs_hand']:.3f}x, jit_compile=True fit = "
            f"{row['fit_xla_speed_vs_hand']:.3f}x. Against torch: fit = "
            f"{torch_ratio_text(row['fit_speed_vs_torch'])}, jit_compile=True fit = "
            f"{torch_ratio_text(row['fit_xla_speed_vs_torch'])} (steps/s ratios; "
            f'{row["timed_steps"]} timed steps per round; Keras\'s "auto" chose '
            f"jit_compile={row['fit_jit_compile']})."
        )
    return lines + [""]


def torch_ratio_text(ratio):
    """A speed ratio against torch, or why there is none."""
    return f"{ratio:.2f}x" if ratio is not None else "not measured"
