"""The Concrete Autoencoder on MNIST: 50 learned pixels against 50 chosen by hand.

Abid, Balın & Zou (ICML 2019) select k of the 784 pixels with a
`ConcreteSelect` encoder and reconstruct the whole image from them with a
decoder trained jointly. This runner trains, on the 60,000 MNIST training
images (grayscale intensities in [0, 1], not binarized):

- `concrete`: `ConcreteSelect(50)` followed by the decoder, the temperature
  annealed exponentially from 10 to 0.01 over the whole run (the paper's
  schedule) by `TemperatureScheduler`;
- `top_variance`: the same decoder fed the 50 pixels of highest variance on
  the training images;
- `random`: the same decoder fed 50 pixels drawn at random (fixed seed).

The decoder is the paper's MNIST one, a 50-320-320-784 MLP with LeakyReLU
hidden layers and a linear output, trained with Adam on the mean squared
error; every model gets the same epochs, batches and learning rate. The
paper trains for hundreds of epochs at a learning rate of 1e-3; this run
has 40 epochs, and at 1e-3 the selection does not settle in that time, so
the learning rate is 1e-2 (see `Config`).
Test: the mean squared error per image on the 10,000 test images, with the
concrete model at inference (the selected pixels exactly). The differences
between models are paired over the test images: the mean of the per-image
difference and its standard error.

Writes `concrete_autoencoder.{json,md,png}`: the numbers, the command, the
epochs and the CPU time, and a figure of the selected pixels beside the
top-variance ones with a few reconstructions.

Usage:
    python -m benchmarks.subsets.concrete_autoencoder --data /work/data/mnist   # committed results
    python -m benchmarks.subsets.concrete_autoencoder --smoke --out /tmp/cae
"""

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model
from benchmarks.common import portable
from benchmarks.common import shown_args

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "concrete_autoencoder"
MODELS = ("concrete", "top_variance", "random")
# The paper's MNIST figure was searched for and not found; see the markdown.
PAPER = None


@dataclasses.dataclass(frozen=True)
class Config:
    data: str = "mnist-sample"
    num_selected: int = 50
    hidden: tuple = (320, 320)
    epochs: int = 40
    batch_size: int = 256
    # The paper's 1e-3 needs hundreds of epochs: in trials with a 64-unit
    # decoder, 40 epochs at 1e-3 (batch 128, 18,800 steps) left the mean
    # largest selection probability at 0.26; at 1e-2 (batch 256) it reached
    # 0.996.
    learning_rate: float = 1e-2
    initial_temperature: float = 10.0
    final_temperature: float = 0.01
    train_images: int | None = None  # None: all of them
    test_images: int | None = None
    seed: int = 0
    threads: int = 1


SMOKE = Config(
    num_selected=5,
    hidden=(16,),
    epochs=2,
    batch_size=64,
    learning_rate=1e-3,
    train_images=512,
    test_images=128,
)


def load_images(config):
    """Flattened float32 train and test images in [0, 1], and the image shape."""
    from keras_gumbel import datasets

    data = datasets.load(config.data, binarization="none", validation_size=0)
    x_train = data.x_train.reshape(len(data.x_train), -1)[: config.train_images]
    x_test = data.x_test.reshape(len(data.x_test), -1)[: config.test_images]
    return x_train, x_test, data.image_shape, data.source


def decoder(config, pixels, name):
    import keras

    layers = [keras.Input(shape=(config.num_selected,))]
    for units in config.hidden:
        layers += [keras.layers.Dense(units), keras.layers.LeakyReLU(0.2)]
    layers.append(keras.layers.Dense(pixels))
    return keras.Sequential(layers, name=name)


def build(config, pixels, selector=None):
    """The decoder after `ConcreteSelect` (selector None) or after fixed pixels."""
    import keras

    from keras_gumbel.layers import ConcreteSelect

    inputs = keras.Input(shape=(pixels,))
    if selector is None:
        selector = ConcreteSelect(
            config.num_selected, temperature=config.initial_temperature, seed=config.seed
        )
        selected = selector(inputs)
    else:
        indices = np.asarray(selector)
        selected = keras.layers.Lambda(lambda x: keras.ops.take(x, indices, axis=-1))(inputs)
    outputs = decoder(config, pixels, "decoder")(selected)
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(config.learning_rate), loss="mse")
    return model


def schedule(config, steps):
    """The paper's exponential decay from the initial to the final temperature."""
    from keras_gumbel.schedules import ExponentialDecay

    rate = math.log(config.initial_temperature / config.final_temperature) / steps
    return ExponentialDecay(
        initial=config.initial_temperature,
        rate=rate,
        minimum=config.final_temperature,
        interval=1,
    )


def train(config, name, model, x_train, callbacks=()):
    started, cpu = time.perf_counter(), time.process_time()
    history = model.fit(
        x_train,
        x_train,
        batch_size=config.batch_size,
        epochs=config.epochs,
        shuffle=True,
        callbacks=list(callbacks),
        verbose=0,
    )
    timing = {"wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}
    losses = [float(v) for v in history.history["loss"]]
    print(f"{name}: train loss {losses[-1]:.5f}, {timing['wall_s']:.0f} s", flush=True)
    return {"train_loss": losses, **timing}


def per_image_mse(model, x):
    reconstruction = np.asarray(model.predict(x, batch_size=1000, verbose=0))
    return ((reconstruction - x) ** 2).mean(axis=1), reconstruction


def paired(a, b):
    """Mean of the per-image `a - b` and its standard error."""
    d = a - b
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    mean = float(d.mean())
    return {"mean": mean, "se": se, "z": mean / se if se > 0 else None}


def run(config):
    import keras
    import tensorflow as tf

    from keras_gumbel.callbacks import TemperatureScheduler

    tf.config.threading.set_intra_op_parallelism_threads(config.threads)
    tf.config.threading.set_inter_op_parallelism_threads(config.threads)
    x_train, x_test, image_shape, source = load_images(config)
    pixels = x_train.shape[1]
    steps = config.epochs * math.ceil(len(x_train) / config.batch_size)
    variance = x_train.var(axis=0)
    chosen = {
        "top_variance": np.sort(np.argsort(-variance, kind="stable")[: config.num_selected]),
        "random": np.sort(
            np.random.default_rng(config.seed).choice(pixels, config.num_selected, replace=False)
        ),
    }
    models, training = {}, {}
    for name in MODELS:
        keras.utils.set_random_seed(config.seed)
        models[name] = build(config, pixels, chosen.get(name))
        callbacks = []
        if name == "concrete":
            callbacks = [TemperatureScheduler(schedule(config, steps))]
        training[name] = train(config, name, models[name], x_train, callbacks)
    selector = models["concrete"].layers[1]
    chosen["concrete"] = selector.selected_indices()
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(selector.logits, axis=-1))
    mse, reconstructions = {}, {}
    for name in MODELS:
        mse[name], reconstructions[name] = per_image_mse(models[name], x_test)
    results = {
        "config": {**dataclasses.asdict(config), "hidden": list(config.hidden)},
        "data": {"source": source, "train_images": len(x_train), "test_images": len(x_test)},
        "steps": steps,
        "final_temperature": float(keras.ops.convert_to_numpy(selector.temperature_variable)),
        "selection": {
            "concrete": chosen["concrete"].tolist(),
            "distinct": int(len(np.unique(chosen["concrete"]))),
            "mean_max_probability": float(probs.max(axis=-1).mean()),
            "overlap_with_top_variance": int(
                len(np.intersect1d(chosen["concrete"], chosen["top_variance"]))
            ),
            "top_variance": chosen["top_variance"].tolist(),
            "random": chosen["random"].tolist(),
        },
        "test_mse": {name: float(mse[name].mean()) for name in MODELS},
        "paired_differences": {
            "top_variance_minus_concrete": paired(mse["top_variance"], mse["concrete"]),
            "random_minus_concrete": paired(mse["random"], mse["concrete"]),
            "random_minus_top_variance": paired(mse["random"], mse["top_variance"]),
        },
        "training": training,
        "cpu_s": sum(t["cpu_s"] for t in training.values()),
        "paper": PAPER,
    }
    return results, (x_test, reconstructions, chosen, image_shape)


def machine(threads):
    import keras
    import tensorflow as tf

    return {
        "cpu": cpu_model(platform.processor() or platform.machine()),
        "cores": os.cpu_count(),
        "tensorflow_threads": threads,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def figure(results, arrays, path):
    from matplotlib.figure import Figure

    x_test, reconstructions, chosen, image_shape = arrays
    pixels = int(np.prod(image_shape))
    mean_image = x_test.mean(axis=0).reshape(image_shape)
    fig = Figure(figsize=(9.5, 6.4))
    grid = fig.add_gridspec(5, 6, height_ratios=[2.2, 1, 1, 1, 1])
    titles = {
        "concrete": "ConcreteSelect",
        "top_variance": "highest variance",
        "random": "random",
    }
    for column, name in enumerate(MODELS):
        ax = fig.add_subplot(grid[0, 2 * column : 2 * column + 2])
        mask = np.zeros(pixels)
        mask[chosen[name]] = 1.0
        ax.imshow(mean_image, cmap="gray_r", alpha=0.35)
        ax.imshow(np.ma.masked_equal(mask.reshape(image_shape), 0), cmap="autumn", vmin=0, vmax=1)
        mse = results["test_mse"][name]
        ax.set_title(f"{titles[name]}\ntest MSE {mse:.4f}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    rows = [("original", x_test)] + [(titles[n], reconstructions[n]) for n in MODELS]
    for row, (label, images) in enumerate(rows, start=1):
        for column in range(6):
            ax = fig.add_subplot(grid[row, column])
            ax.imshow(
                np.clip(images[column], 0, 1).reshape(image_shape), cmap="gray", vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if column == 0:
                ax.set_ylabel(label, fontsize=7)
    k = results["config"]["num_selected"]
    fig.suptitle(f"{k} of {pixels} pixels: selected (top, over the mean test digit) and "
                 "reconstructions of test digits", fontsize=10)  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(results):
    config = results["config"]
    m = results["machine"]
    mse = results["test_mse"]
    diffs = results["paired_differences"]
    selection = results["selection"]
    data = results["data"]
    lines = [
        "# Concrete Autoencoder on MNIST",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, TensorFlow {m['tensorflow']} with "
        f"{m['tensorflow_threads']} thread(s), Keras {m['keras']}. Data: {data['source']}, "
        f"{data['train_images']:,} training and {data['test_images']:,} test images, grayscale "
        "intensities in [0, 1] (not binarized).",
        "",
        f"Every model: decoder {config['num_selected']}-"
        + "-".join(str(h) for h in config["hidden"])
        + f"-784 (LeakyReLU 0.2, linear output), Adam {config['learning_rate']:g}, batch "
        f"{config['batch_size']}, {config['epochs']} epochs ({results['steps']:,} steps), MSE "
        f"loss. `concrete`: `ConcreteSelect({config['num_selected']})` before the decoder, "
        f"temperature {config['initial_temperature']:g} -> {config['final_temperature']:g} "
        "exponentially over the run (`ExponentialDecay(initial=10, rate=log(1000) / steps, "
        "minimum=0.01, interval=1)`); tested at inference (the selected pixels exactly). "
        f"`top_variance`: the {config['num_selected']} pixels of highest training variance. "
        f"`random`: {config['num_selected']} pixels drawn with seed {config['seed']}.",
        "",
        "| pixels | test MSE | training CPU time |",
        "|---|---:|---:|",
    ]
    for name in MODELS:
        cpu = results["training"][name]["cpu_s"]
        lines.append(f"| {name} | {mse[name]:.5f} | {cpu:.0f} s |")
    lines += [
        "",
        "Paired over the test images (mean per-image difference, its standard error, and "
        "their ratio):",
        "",
        "| difference | mean | s.e. | mean / s.e. |",
        "|---|---:|---:|---:|",
    ]
    for key, d in diffs.items():
        label = key.replace("_minus_", " - ")
        z = f"{d['z']:.1f}" if d["z"] is not None else "-"
        lines.append(f"| {label} | {d['mean']:.5f} | {d['se']:.5f} | {z} |")
    lines += [
        "",
        f"The concrete selection: {selection['distinct']} distinct pixels of "
        f"{config['num_selected']}, mean largest selection probability "
        f"{selection['mean_max_probability']:.3f}, {selection['overlap_with_top_variance']} in "
        f"common with the top-variance pixels; final temperature "
        f"{results['final_temperature']:.4g}.",
        "",
        "![selected pixels and reconstructions](concrete_autoencoder.png)",
        "",
        "## Beside the paper",
        "",
        "The authors' published code for their MNIST demonstration uses this decoder (two "
        "hidden layers of 320 units) with Adam at 1e-3 for 800 epochs, and their comparison "
        "code trains 300 epochs at 1e-3. In the 40 epochs here the selection does not settle "
        "at 1e-3 (in 40-epoch trials with a 64-unit decoder, the mean largest selection "
        "probability reached 0.26 at 1e-3 and 0.996 at 1e-2), hence 1e-2 for every model. "
        "The paper's tables measure "
        "reconstruction on their own split (in their code, 4,000 training and 6,000 test "
        "images drawn from MNIST's test set) with a separately trained evaluation decoder, so "
        "their numbers are not comparable with these. The paper's MNIST figure was searched "
        "for and not found in the sources available here, so no number of theirs is quoted; "
        "the comparison above, the same decoder fed different pixels, stands on its own.",
        "",
        f"Training CPU time, all three models: {results['cpu_s']:.0f} s "
        f"(wall {results['wall_s']:.0f} s on a shared machine).",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="an MNIST IDX directory (or a dataset name)")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--smoke", action="store_true", help="seconds-long run on the sample")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    config = SMOKE if args.smoke else Config()
    changes = {
        "data": args.data,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "threads": args.threads,
    }
    config = dataclasses.replace(config, **{k: v for k, v in changes.items() if v is not None})
    argv = sys.argv[1:] if argv is None else argv
    shown = shown_args(argv, {"--out": 1})
    command = " ".join(["python", "-m", "benchmarks.subsets.concrete_autoencoder", *shown])
    started = time.perf_counter()
    results, arrays = run(config)
    results = portable({"command": command, "smoke": args.smoke, **results}, args.data)
    results["machine"] = machine(config.threads)
    results["wall_s"] = time.perf_counter() - started
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{NAME}.md").write_text(markdown(results))
    figure(results, arrays, args.out / f"{NAME}.png")
    print(markdown(results))


if __name__ == "__main__":
    main()
