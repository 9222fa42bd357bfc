"""The `keras-gumbel` command line: thin wrappers over library functions.

Arguments are parsed before any data or model is loaded, so bad input
fails fast, with a one-line error and exit status 2. This module imports
only the standard library at module level: the `keras-gumbel` entry point
(`keras_gumbel_cli`) loads it without the package, so that `--help` and
usage errors never load TensorFlow, and every command hides TensorFlow's
start-up logs unless `--verbose` is given or TF_CPP_MIN_LOG_LEVEL is set.
"""

import argparse
import json
import os
import sys

MODELS = ("categorical-vae", "bernoulli-vae", "sbn-bernoulli", "sbn-categorical", "semi-supervised")

# The extra each command needs (see keras_gumbel/_extras.py); none is needed for --help.
COMMAND_EXTRAS = {
    "train": "paper",
    "evaluate": "paper",
    # The demo trains, then exports, serves and encodes.
    "demo": "paper,serving",
    "export": "serving",
    "serve": "serving",
    "encode": "serving",
}

# The library's errors that a command reports in one line, by the module that defines them.
_LIBRARY_ERRORS = (
    ("keras_gumbel.datasets", "DatasetError"),
    ("keras_gumbel.export", "ExportError"),
    ("keras_gumbel.serving", "ServingError"),
    ("keras_gumbel.training", "RunError"),
)


def _extras():
    """`keras_gumbel/_extras.py`, loaded without the package (whose import loads Keras).

    It is registered under its own name, so the package's later imports of it
    find this module and its `MissingExtraError` is one class.
    """
    module = sys.modules.get("keras_gumbel._extras")
    if module is None:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_extras.py")
        spec = importlib.util.spec_from_file_location("keras_gumbel._extras", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules["keras_gumbel._extras"] = module
    return module


def _library_errors():
    """The error classes of `_LIBRARY_ERRORS` whose subpackages are installed."""
    import importlib

    errors = []
    for module, name in _LIBRARY_ERRORS:
        try:
            errors.append(getattr(importlib.import_module(module), name))
        except _extras().MissingExtraError:
            pass  # Commands that need the subpackage say so when they import it.
    return tuple(errors)


def quiet_tensorflow(verbose=False):
    """Loads TensorFlow without its C++ start-up logs, unless they are wanted.

    Does nothing with `verbose`, when the environment sets
    TF_CPP_MIN_LOG_LEVEL (the user's own choice), or once TensorFlow is
    loaded. Otherwise it sets TF_CPP_MIN_LOG_LEVEL=3 for the rest of the
    run (which hides later C++ logs: cuInit errors, XLA service lines) and
    imports TensorFlow while the process's standard error (file descriptor
    2) points at a temporary file, because TensorFlow 2.21 prints its
    start-up lines (absl, oneDNN, CUDA drivers, CPU instructions) before it
    reads that variable. If the import fails, the hidden lines are written
    out before the error propagates. TF_ENABLE_ONEDNN_OPTS is left alone:
    it changes numerics, not logging.
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    import tempfile

    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as hidden:
        os.dup2(hidden.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            hidden.seek(0)
            sys.stderr.write(hidden.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line: `keras-gumbel CMD: error: ...`."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text!r}")
    return value


def _nonnegative_float(text):
    if text.strip() in ("0", "0.0"):
        return 0.0
    return _positive_float(text)


def _add_train_arguments(parser):
    from_config = parser.add_argument_group("model and data")
    from_config.add_argument("model", choices=MODELS, help="the model to train")
    from_config.add_argument(
        "--data",
        default="mnist-sample",
        help="'mnist-sample' (ships with the package), 'mnist', 'fashion_mnist' "
        "(keras.datasets, needs internet) or a directory of IDX files "
        "(default: %(default)s)",
    )
    from_config.add_argument(
        "--binarization",
        choices=("static", "dynamic", "threshold"),
        help="default: dynamic for semi-supervised (as in the paper), static otherwise",
    )
    from_config.add_argument(
        "--num-vars", type=_positive_int, help="latent variables (or units) per layer"
    )
    from_config.add_argument(
        "--num-classes", type=_positive_int, default=10, help="classes per categorical variable"
    )
    from_config.add_argument("--prior", choices=("uniform", "learned"), default="uniform")
    from_config.add_argument(
        "--num-labels",
        type=_positive_int,
        default=100,
        help="semi-supervised: labelled training images, balanced over the classes "
        "(default: %(default)s)",
    )
    from_config.add_argument(
        "--alpha",
        type=_positive_float,
        default=1.0,
        help="semi-supervised: weight of the labelled cross-entropy (default: %(default)s)",
    )
    opt = parser.add_argument_group("optimization")
    opt.add_argument("--epochs", type=_positive_int, default=10)
    opt.add_argument("--batch-size", type=_positive_int, default=100)
    opt.add_argument(
        "--optimizer", choices=("adam", "sgd"), default="adam", help="sgd uses momentum 0.9"
    )
    opt.add_argument("--learning-rate", type=_positive_float, default=1e-3)
    opt.add_argument(
        "--lr-decay", type=_positive_float, default=1.0, help="staircase decay factor (1: constant)"
    )
    opt.add_argument("--lr-decay-steps", type=_positive_int, default=1000)
    opt.add_argument(
        "--estimator",
        default="gumbel_softmax",
        help="gradient estimator: gumbel_softmax, st_gumbel_softmax, straight_through, "
        "annealed_straight_through, score_function, darn, muprop, reinmax, gumbel_rao, "
        "gapped_straight_through; for semi-supervised: marginalize, gumbel_softmax, "
        "st_gumbel_softmax (default: %(default)s)",
    )
    opt.add_argument(
        "--estimator-option",
        action="append",
        type=_estimator_option,
        metavar="NAME=VALUE",
        help="an argument of the estimator, VALUE as JSON (for example normalize=false for "
        "score_function, darn and muprop); repeatable",
    )
    tau = parser.add_argument_group("temperature")
    tau.add_argument(
        "--schedule",
        choices=("exponential", "constant", "geometric", "linear", "cosine"),
        help="default: exponential for VAEs, constant for SBNs (as in the paper)",
    )
    tau.add_argument("--tau0", type=_positive_float, default=1.0, help="initial temperature")
    tau.add_argument(
        "--tau-min", type=_positive_float, default=0.5, help="floor or final temperature"
    )
    tau.add_argument(
        "--anneal-rate",
        type=_nonnegative_float,
        default=3e-5,
        help="r of exp(-r t), or the geometric decay",
    )
    tau.add_argument(
        "--anneal-interval",
        type=_positive_int,
        help="steps between recomputations (default: 2000 for semi-supervised, as in the "
        "paper, 1000 otherwise)",
    )
    tau.add_argument(
        "--anneal-steps",
        type=_positive_int,
        default=10000,
        help="length of linear/cosine schedules",
    )
    run = parser.add_argument_group("run")
    run.add_argument("--output", "-o", required=True, help="run directory")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --output from its last checkpoint",
    )
    run.add_argument("--overwrite", action="store_true", help="replace an existing run in --output")
    run.add_argument("--strategy", choices=("one", "mirrored", "multi-worker"), default="one")
    run.add_argument("--eval-samples", type=_positive_int, default=1000, help="m of the test bound")
    run.add_argument(
        "--restore-best",
        action="store_true",
        help="evaluate, save and export the weights of the epoch with the lowest validation "
        "loss instead of the last epoch's (as Keras's EarlyStopping(restore_best_weights=True))",
    )
    run.add_argument("--seed", type=int, default=0)
    run.add_argument(
        "--data-seed",
        type=int,
        help="seed of the static binarization, to keep the bits fixed across --seed "
        "(default: --seed)",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")


def _estimator_option(text):
    """`normalize=false` -> ("normalize", False); a VALUE that is not JSON stays a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        return name, value


def _config_from_args(args):
    from keras_gumbel.training import RunConfig

    schedule = args.schedule or ("constant" if args.model.startswith("sbn-") else "exponential")
    semi_supervised = args.model == "semi-supervised"
    return RunConfig(
        model=args.model,
        data=args.data,
        binarization=args.binarization or ("dynamic" if semi_supervised else "static"),
        epochs=args.epochs,
        batch_size=args.batch_size,
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        lr_decay=args.lr_decay,
        lr_decay_steps=args.lr_decay_steps,
        estimator=args.estimator,
        estimator_options=dict(args.estimator_option) if args.estimator_option else None,
        schedule=schedule,
        tau0=args.tau0,
        tau_min=args.tau_min,
        anneal_rate=args.anneal_rate,
        anneal_interval=args.anneal_interval or (2000 if semi_supervised else 1000),
        anneal_steps=args.anneal_steps,
        num_vars=args.num_vars,
        num_classes=args.num_classes,
        prior=args.prior,
        eval_samples=args.eval_samples,
        num_labels=args.num_labels,
        alpha=args.alpha,
        strategy=args.strategy,
        restore_best=args.restore_best,
        seed=args.seed,
        data_seed=args.data_seed,
    )


def _print_metrics(metrics):
    skip = {"figures"}
    width = max(len(k) for k in metrics)
    for key, value in metrics.items():
        if key not in skip:
            print(
                f"  {key:<{width}}  {value:.4g}"
                if isinstance(value, float)
                else f"  {key:<{width}}  {value}"
            )
    for name, path in metrics.get("figures", {}).items():
        print(f"  figure {name:<{width - 7}}  {path}")


def cmd_train(args):
    from keras_gumbel import training

    if args.resume and args.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    config = _config_from_args(args)
    print(
        f"keras-gumbel train: {args.model} on {args.data}, {args.epochs} "
        f"epoch{'s' if args.epochs > 1 else ''}, "
        f"run directory {args.output}",
        flush=True,
    )
    metrics = training.train(
        config,
        args.output,
        resume=args.resume,
        overwrite=args.overwrite,
        verbose=0 if args.quiet else "auto",
    )
    print(f"\nTest metrics of {args.output} (bounds in nats, lower is better):")
    _print_metrics(metrics)


def cmd_evaluate(args):
    from keras_gumbel import training

    metrics = training.evaluate(args.run_dir, num_samples=args.samples)
    print(f"Test metrics of {args.run_dir} (bounds in nats, lower is better):")
    _print_metrics(metrics)


def cmd_export(args):
    if args.source.endswith(".keras"):
        from keras_gumbel.export import export_keras_file

        path = export_keras_file(
            args.source,
            args.base_path,
            args.name,
            sample_inputs=args.sample_inputs,
            codes_layer=args.codes_layer,
            version=args.version,
            verify_with_cli=not args.skip_cli_check,
        )
    else:
        from keras_gumbel import training

        if args.codes_layer or args.sample_inputs:
            raise ValueError(
                "--codes-layer and --sample-inputs apply to a .keras model file; a run "
                "directory exports its model's own signatures"
            )
        path = training.export_run(
            args.source,
            args.base_path,
            args.name,
            args.version,
            verify_with_cli=not args.skip_cli_check,
        )
    print(f"Exported and verified: {path}")


def _read_inputs(path):
    """Inputs from a .npy file (as saved), a .npz file (one array per input
    name) or an IDX images file (0-255, binarized at 0.5)."""
    import numpy as np

    from keras_gumbel.datasets import read_idx

    if path.endswith(".npy"):
        return np.load(path)
    if path.endswith(".npz"):
        with np.load(path) as arrays:
            return {name: arrays[name] for name in arrays.files}
    return (read_idx(path).astype("float32") / 255.0 > 0.5).astype("float32")


def cmd_encode(args):
    import numpy as np

    from keras_gumbel.serving import ServingClient

    inputs = _read_inputs(args.inputs)
    with ServingClient(
        args.server,
        args.model,
        version=args.version,
        version_label=args.label,
        timeout=args.timeout,
        batch_size=args.batch_size,
    ) as client:
        codes = client.encode(inputs, input_name=args.input_name)
        means = client.decode(codes) if args.decode else None
    if args.output:
        arrays = {"codes": codes} if means is None else {"codes": codes, "means": means}
        np.savez(args.output, **arrays) if args.output.endswith(".npz") else np.save(
            args.output, codes
        )
        print(f"Wrote the codes of {len(codes)} examples to {args.output}")
    else:
        for row in codes:
            print(" ".join(str(int(c)) for c in np.ravel(row)))


def cmd_demo(args):
    from keras_gumbel.demo import demo

    demo(args.output, epochs=args.epochs)


def build_parser():
    parser = _Parser(prog="keras-gumbel", description="Gumbel-Softmax models for Keras.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    train = commands.add_parser("train", help="train one of the paper's models")
    _add_train_arguments(train)
    train.set_defaults(run=cmd_train)
    evaluate = commands.add_parser(
        "evaluate", help="compute the m-sample test bound of a trained run"
    )
    evaluate.add_argument("run_dir")
    evaluate.add_argument(
        "--samples", type=_positive_int, help="m (default: the run's --eval-samples)"
    )
    evaluate.set_defaults(run=cmd_evaluate)
    export = commands.add_parser(
        "export", help="export a trained run or a .keras model as a SavedModel for TF Serving"
    )
    export.add_argument(
        "source",
        metavar="RUN_DIR|MODEL.keras",
        help="a run directory, or a saved Keras model with a Gumbel layer",
    )
    export.add_argument(
        "--base-path", required=True, help="model base path, as given to the server"
    )
    export.add_argument(
        "--name", help="model name (default: the run directory's or model file's name)"
    )
    export.add_argument(
        "--codes-layer", help="MODEL.keras: the layer whose codes to serve, if it has several"
    )
    export.add_argument(
        "--sample-inputs",
        help="MODEL.keras: .npy (or .npz by input name) of real inputs to verify the export on "
        "(default: made-up inputs of the model's shapes)",
    )
    export.add_argument(
        "--version", type=_positive_int, help="version number (default: the next free one)"
    )
    export.add_argument(
        "--skip-cli-check", action="store_true", help="verify with tf.saved_model.load only"
    )
    export.set_defaults(run=cmd_export)
    commands.add_parser(
        "serve",
        add_help=False,
        help="serve exported models over TF Serving's gRPC and REST APIs "
        "(keras-gumbel serve --help)",
    )
    encode = commands.add_parser(
        "encode", help="encode inputs into discrete codes through a model server"
    )
    encode.add_argument(
        "inputs",
        help="a .npy file of inputs (any shape and dtype; shaped and cast as the server's "
        "encode signature says), a .npz file of named inputs, or an IDX images file",
    )
    encode.add_argument(
        "--input-name",
        help="the input to send a .npy array as (default: the encode signature's only input, "
        "read from the server's metadata)",
    )
    encode.add_argument(
        "--server",
        default="127.0.0.1:8500",
        help="HOST:PORT of the gRPC server (default: %(default)s)",
    )
    encode.add_argument("--model", required=True, help="model name")
    encode.add_argument("--version", type=_positive_int, help="model version (default: latest)")
    encode.add_argument("--label", help="model version label")
    encode.add_argument("--timeout", type=_positive_float, default=30.0, help="seconds per request")
    encode.add_argument(
        "--batch-size", type=_positive_int, default=1024, help="examples per request"
    )
    encode.add_argument(
        "--decode", action="store_true", help="also fetch the decoded Bernoulli means (.npz output)"
    )
    encode.add_argument(
        "--output", "-o", help="save to .npy (codes) or .npz (codes, means) instead of printing"
    )
    encode.set_defaults(run=cmd_encode)
    demo = commands.add_parser(
        "demo", help="train, evaluate and plot a categorical VAE on the shipped sample"
    )
    demo.add_argument("--output", "-o", help="run directory (default: a new runs/demo-TIMESTAMP)")
    demo.add_argument(
        "--epochs", type=_positive_int, default=None, help="override the demo's epoch count"
    )
    demo.set_defaults(run=cmd_demo)
    # --verbose goes before or after the command.
    verbose_help = "show TensorFlow's own start-up and C++ logs"
    parser.add_argument("--verbose", action="store_true", help=verbose_help)
    for command, subparser in commands.choices.items():
        if command != "serve":
            subparser.add_argument(
                "--verbose", action="store_true", default=argparse.SUPPRESS, help=verbose_help
            )
    return parser


def _missing_extra(command):
    """The one-line error of `command` if its extra is not installed, else None."""
    try:
        _extras().require_extra("this command", COMMAND_EXTRAS[command])
    except _extras().MissingExtraError as error:
        return f"keras-gumbel {command}: error: {error}"
    return None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[1:2] if argv[:1] == ["--verbose"] else argv[:1]
    if command == ["serve"]:
        # The server keeps TF Serving's own flag names; --verbose is ours.
        rest = argv[argv.index("serve") + 1 :]
        serve_args = [arg for arg in rest if arg != "--verbose"]
        missing = _missing_extra("serve")
        if missing:
            print(missing, file=sys.stderr)
            return 2
        quiet_tensorflow(verbose=argv[0] == "--verbose" or len(serve_args) < len(rest))
        from keras_gumbel.serving.server import main as serve_main

        return serve_main(serve_args, prog="keras-gumbel serve")
    args = build_parser().parse_args(argv)
    missing = _missing_extra(args.command)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    quiet_tensorflow(args.verbose)
    errors = (*_library_errors(), _extras().MissingExtraError, ValueError, OSError)
    try:
        args.run(args)
    except errors as error:
        print(f"keras-gumbel {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"keras-gumbel {args.command}: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
