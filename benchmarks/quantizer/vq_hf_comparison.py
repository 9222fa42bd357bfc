"""GumbelVectorQuantizer against Hugging Face's Wav2Vec2GumbelVectorQuantizer.

For several sizes (G groups, V code vectors per group, D input features, C
output features), with and without a time mask, the PyTorch module from
transformers gets random weights (wav2vec 2.0's initialization), the Keras
layer gets a copy of them:

    kernel      = weight_proj.weight.T    (D, G * V)
    bias        = weight_proj.bias        (G * V,)
    codevectors = codevectors[0]          (G * V, C // G)

and both run on the same inputs, HF's `mask_time_indices` passed as the
Keras mask. Reported per configuration, as maximum absolute differences:
the inference outputs, the projected logits, the eval-mode perplexity (of
the one-hot codes) and the training-mode perplexity (of softmax(logits),
noise-free), plus the number of positions whose codes differ. Every Keras
backend installed (TensorFlow, JAX) runs in its own process.

Needs PyTorch and transformers (`pip install -e .[hf]`).

Usage:
    python -m benchmarks.quantizer.vq_hf_comparison
    python -m benchmarks.quantizer.vq_hf_comparison --out /tmp/vq
"""

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import cpu_model

ROOT = Path(__file__).resolve().parents[2]
RESULTS = Path(__file__).resolve().parent / "results"
NAME = "vq_hf_comparison"
# (G, V, D, C): wav2vec 2.0 base's quantizer first, then smaller and odd sizes.
CONFIGS = ((2, 320, 512, 256), (1, 16, 8, 4), (4, 32, 64, 64), (3, 7, 10, 6), (2, 320, 768, 768))
BATCH, STEPS = 8, 200
BACKENDS = ("tensorflow", "jax")


def hf_module(num_groups, num_vars, input_dim, codevector_dim, seed):
    import torch
    from transformers import Wav2Vec2Config
    from transformers.models.wav2vec2.modeling_wav2vec2 import Wav2Vec2GumbelVectorQuantizer

    config = Wav2Vec2Config(
        conv_dim=(input_dim,),
        conv_stride=(1,),
        conv_kernel=(1,),
        num_codevector_groups=num_groups,
        num_codevectors_per_group=num_vars,
        codevector_dim=codevector_dim,
    )
    torch.manual_seed(seed)
    module = Wav2Vec2GumbelVectorQuantizer(config)
    with torch.no_grad():
        module.weight_proj.weight.normal_(0.0, 1.0)
        module.weight_proj.bias.normal_(0.0, 0.1)
        module.codevectors.uniform_()
    return module


def keras_layer(module, num_groups, num_vars, codevector_dim):
    from keras_gumbel.layers import GumbelVectorQuantizer

    layer = GumbelVectorQuantizer(num_groups, num_vars, codevector_dim, diversity_weight=1.0)
    layer.build((None, None, module.weight_proj.in_features))
    weights = (
        module.weight_proj.weight.detach().numpy().T,
        module.weight_proj.bias.detach().numpy(),
        module.codevectors.detach().numpy()[0],
    )
    for variable, value in zip(layer.trainable_weights, weights, strict=True):
        variable.assign(value)
    return layer


def compare(sizes, masked, seed):
    """Max abs differences between the two implementations for one configuration."""
    import keras
    import torch

    from keras_gumbel import ops as gumbel_ops

    num_groups, num_vars, input_dim, codevector_dim = sizes
    module = hf_module(*sizes, seed=seed)
    layer = keras_layer(module, num_groups, num_vars, codevector_dim)
    rng = np.random.default_rng(seed + 1)
    x = rng.normal(size=(BATCH, STEPS, input_dim)).astype("float32")
    mask = rng.uniform(size=(BATCH, STEPS)) < 0.6 if masked else None
    hf_x = torch.from_numpy(x)
    hf_mask = None if mask is None else torch.from_numpy(mask)

    with torch.no_grad():
        module.eval()
        hf_out, hf_eval_perplexity = module(hf_x, mask_time_indices=hf_mask)
        module.train()
        _, hf_train_perplexity = module(hf_x, mask_time_indices=hf_mask)
        hf_logits = module.weight_proj(hf_x).view(BATCH, STEPS, num_groups, num_vars)

    out = keras.ops.convert_to_numpy(layer(x, training=False, mask=mask))
    codes = layer.discrete_codes(x, mask=mask)
    eval_perplexity = gumbel_ops.codebook_perplexity(codes["one_hot"], mask)
    layer(x, training=True, mask=mask)
    # diversity_weight = 1: loss = (G V - perplexity) / (G V).
    total = num_groups * num_vars
    train_perplexity = total * (1 - float(keras.ops.convert_to_numpy(layer.losses[0])))
    logits = keras.ops.convert_to_numpy(layer.group_logits(x))
    keras_codes = keras.ops.convert_to_numpy(codes["codes"])
    hf_codes = hf_logits.argmax(-1).numpy()
    diffs = {
        "outputs": float(np.abs(out - hf_out.numpy()).max()),
        "logits": float(np.abs(logits - hf_logits.numpy()).max()),
        "eval_perplexity": abs(float(eval_perplexity) - float(hf_eval_perplexity)),
        "train_perplexity": abs(train_perplexity - float(hf_train_perplexity)),
    }
    # Relative to the size of what is compared, to read against float32's
    # machine epsilon (1.19e-7).
    scales = {
        "outputs": float(np.abs(hf_out.numpy()).max()),
        "logits": float(np.abs(hf_logits.numpy()).max()),
        "eval_perplexity": float(hf_eval_perplexity),
        "train_perplexity": float(hf_train_perplexity),
    }
    return {
        "num_groups": num_groups,
        "num_vars": num_vars,
        "input_dim": input_dim,
        "codevector_dim": codevector_dim,
        "masked": masked,
        "positions": BATCH * STEPS,
        "counted_positions": int(mask.sum()) if masked else BATCH * STEPS,
        "codes_differing": int(np.sum(np.any(keras_codes != hf_codes, axis=-1))),
        "max_abs_diff": diffs,
        "relative_diff": {key: diffs[key] / scales[key] for key in diffs},
        "hf_eval_perplexity": float(hf_eval_perplexity),
        "hf_train_perplexity": float(hf_train_perplexity),
        "max_abs_logit": float(np.abs(hf_logits.numpy()).max()),
    }


def worker():
    """Runs every configuration on this process's Keras backend; prints JSON."""
    import keras
    import torch

    torch.set_num_threads(2)
    rows = [
        compare(sizes, masked, seed=10 * i + masked)
        for i, sizes in enumerate(CONFIGS)
        for masked in (False, True)
    ]
    print(json.dumps({"backend": keras.backend.backend(), "rows": rows}))


def version_of(distribution):
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "not installed"


def run_backend(backend):
    if importlib.util.find_spec({"tensorflow": "tensorflow", "jax": "jax"}[backend]) is None:
        return {"backend": backend, "status": "not installed"}
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.quantizer.vq_hf_comparison", "--worker"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the {backend} worker failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["status"] = "ok"
    return result


def command_args(argv):
    kept, argv = [], list(argv)
    while argv:
        arg = argv.pop(0)
        if arg == "--out":
            argv = argv[1:]
        elif not arg.startswith("--out="):
            kept.append(arg)
    return kept


def summary(results):
    worst = {"max_abs_diff": {}, "relative_diff": {}, "codes_differing": 0}
    for backend in results["backends"]:
        for row in backend.get("rows", []):
            for kind in ("max_abs_diff", "relative_diff"):
                for key, value in row[kind].items():
                    worst[kind][key] = max(worst[kind].get(key, 0.0), value)
            worst["codes_differing"] = max(worst["codes_differing"], row["codes_differing"])
    return worst


def markdown(results):
    lines = [
        "# GumbelVectorQuantizer vs Hugging Face's Wav2Vec2GumbelVectorQuantizer",
        "",
        f"Command: `{results['command']}`",
        "",
        f"Versions: {', '.join(f'{k} {v}' for k, v in results['versions'].items())}.",
        "",
        f"Machine: {results['machine']}.",
        "",
        "Both sides hold the same weights (Keras kernel = `weight_proj.weight.T`, bias = "
        "`weight_proj.bias`, codevectors = `codevectors[0]`) and get the same float32 inputs "
        f"`[{BATCH}, {STEPS}, D]` (standard normal); the masked rows pass a random "
        "`mask_time_indices` (60% of the steps) to HF and the same mask to Keras. HF's weights: "
        "kernel N(0, 1), bias N(0, 0.1), codebook U[0, 1). Columns are maximum absolute "
        "differences: inference outputs, projected logits, perplexity in eval mode (one-hot "
        "codes) and in training mode (softmax of the logits), and the number of positions "
        "whose codes differ.",
        "",
        "| backend | G | V | D | C | mask | outputs | logits | eval perplexity "
        "| train perplexity | codes differing | HF eval perplexity | max abs logit |",
        "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for backend in results["backends"]:
        if backend["status"] != "ok":
            lines.append(f"| {backend['backend']} | {backend['status']} |" + " |" * 11)
            continue
        for row in backend["rows"]:
            d = row["max_abs_diff"]
            lines.append(
                f"| {backend['backend']} | {row['num_groups']} | {row['num_vars']} | "
                f"{row['input_dim']} | {row['codevector_dim']} | "
                f"{'yes' if row['masked'] else 'no'} | {d['outputs']:.3g} | {d['logits']:.3g} | "
                f"{d['eval_perplexity']:.3g} | {d['train_perplexity']:.3g} | "
                f"{row['codes_differing']} / {row['positions']} | "
                f"{row['hf_eval_perplexity']:.3f} | {row['max_abs_logit']:.1f} |"
            )
    worst = results["worst"]
    lines += [
        "",
        "Worst over all rows, absolute: "
        + ", ".join(f"{k} {v:.3g}" for k, v in worst["max_abs_diff"].items())
        + "; relative to the largest value compared (float32 epsilon is 1.19e-7): "
        + ", ".join(f"{k} {v:.2g}" for k, v in worst["relative_diff"].items())
        + f"; positions with differing codes: {worst['codes_differing']}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker()
        return
    for module in ("torch", "transformers"):
        if importlib.util.find_spec(module) is None:
            parser.error(f"{module} is not installed: pip install -e .[hf]")
    start = time.perf_counter()
    results = {
        "command": "python -m benchmarks.quantizer.vq_hf_comparison"
        + "".join(f" {a}" for a in command_args(argv)),
        "versions": {
            name: version_of(name)
            for name in ("keras-gumbel", "keras", "tensorflow", "jax", "torch", "transformers")
        },
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.platform()}, "
        f"Python {platform.python_version()}",
        "inputs": {"batch": BATCH, "steps": STEPS, "mask_fraction": 0.6},
        "backends": [run_backend(backend) for backend in BACKENDS],
    }
    results["worst"] = summary(results)
    results["wall_s"] = time.perf_counter() - start
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / f"{NAME}.md").write_text(markdown(results))
    print((args.out / f"{NAME}.md").read_text())


if __name__ == "__main__":
    main()
