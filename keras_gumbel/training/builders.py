"""From a `RunConfig` to the model, optimizer, schedule, strategy and data."""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from keras_gumbel import datasets
from keras_gumbel import schedules
from keras_gumbel.models import BernoulliVAE
from keras_gumbel.models import CategoricalVAE
from keras_gumbel.models import SemiSupervisedVAE
from keras_gumbel.models import StochasticBinaryNetwork
from keras_gumbel.training.config import estimator_identifier


def is_sbn(config):
    return config.model.startswith("sbn-")


def is_semi_supervised(config):
    return config.model == "semi-supervised"


def build_model(config, image_shape=(28, 28)):
    """The model of `config`, unbuilt (its input size comes from the data)."""
    if is_semi_supervised(config):
        return SemiSupervisedVAE(
            num_classes=config.num_classes,
            latent_dim=config.num_vars or 64,
            image_shape=image_shape,
            y_estimator=config.estimator,
            alpha=config.alpha,
            temperature=config.tau0,
            seed=config.seed,
        )
    common = {
        "estimator": estimator_identifier(config),
        "temperature": config.tau0,
        "seed": config.seed,
    }
    if config.model == "categorical-vae":
        return CategoricalVAE(
            num_vars=config.num_vars or 20,
            num_classes=config.num_classes,
            prior=config.prior,
            **common,
        )
    if config.model == "bernoulli-vae":
        return BernoulliVAE(num_vars=config.num_vars or 200, prior=config.prior, **common)
    latent = config.model.removeprefix("sbn-")
    return StochasticBinaryNetwork(
        latent=latent, num_vars=config.num_vars, num_classes=config.num_classes, **common
    )


def build_optimizer(config):
    learning_rate = config.learning_rate
    if config.lr_decay < 1:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.learning_rate, config.lr_decay_steps, config.lr_decay, staircase=True
        )
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=0.9)
    return keras.optimizers.Adam(learning_rate)


def build_schedule(config):
    """The temperature schedule of `config` as a `keras_gumbel.schedules` object."""
    if config.schedule == "exponential":
        return schedules.ExponentialDecay(
            config.tau0, config.anneal_rate, config.tau_min, config.anneal_interval
        )
    if config.schedule == "geometric":
        return schedules.GeometricDecay(config.tau0, config.anneal_rate, config.tau_min)
    if config.schedule == "constant":
        return schedules.Constant(config.tau0)
    return schedules.get(
        config.schedule, initial=config.tau0, final=config.tau_min, steps=config.anneal_steps
    )


def build_strategy(name):
    """`one`: the default device; `mirrored`: all local devices;
    `multi-worker`: the cluster described by the `TF_CONFIG` variable."""
    if name == "mirrored":
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # Between CPU devices, collective all-reduce keys clash when a process
        # creates a second MirroredStrategy (a notebook, a test session);
        # reducing on one device has no such state.
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi-worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


@dataclasses.dataclass
class RunData:
    """The splits of a run's dataset as tf.data pipelines, plus what plots need."""

    train: tf.data.Dataset
    validation: tf.data.Dataset
    test: tf.data.Dataset
    test_arrays: tuple
    train_targets: np.ndarray
    image_shape: tuple
    description: str


def build_data(config, batch_size=None):
    """Loads and binarizes the data of `config` and builds its pipelines.

    VAEs get flattened images; stochastic binary networks get
    `(upper half, lower half)` pairs; the semi-supervised model gets
    labelled and unlabelled batches to train on and `(images, labels)`
    pairs to evaluate on.
    """
    batch_size = batch_size or config.batch_size
    data = datasets.load(config.data, binarization=config.binarization, seed=_data_seed(config))
    if is_semi_supervised(config):
        return _semi_supervised_data(config, data, batch_size)
    dynamic = config.binarization == "dynamic"

    # split_halves gives the upper half the middle row of an odd height.
    upper_size = -(-data.image_shape[0] // 2) * data.image_shape[1]

    def pipeline(images, shuffle, seed):
        ds = datasets.make_dataset(
            images, batch_size=batch_size, shuffle=shuffle, seed=seed, dynamic_binarization=dynamic
        )
        if is_sbn(config):
            ds = ds.map(lambda x: (x[:, :upper_size], x[:, upper_size:]))
        return ds

    validation_images, test_images = _fixed_bits(config, data)
    if is_sbn(config):
        test_arrays = tuple(np.asarray(a, "float32") for a in datasets.split_halves(test_images))
        train_targets = datasets.split_halves(data.x_train)[1]
    else:
        test_arrays = (np.asarray(test_images, "float32").reshape(len(test_images), -1),)
        train_targets = data.x_train
    return RunData(
        train=pipeline(data.x_train, True, config.seed),
        validation=pipeline(validation_images, False, config.seed),
        test=pipeline(test_images, False, config.seed),
        test_arrays=test_arrays,
        train_targets=train_targets,
        image_shape=tuple(data.image_shape),
        description=data.summary(),
    )


def _data_seed(config):
    return config.seed if config.data_seed is None else config.data_seed


def _fixed_bits(config, data):
    """Validation and test images; dynamic runs evaluate on fixed bits drawn
    once with the run's data seed."""
    if config.binarization != "dynamic":
        return data.x_val, data.x_test
    return (
        datasets.binarize(data.x_val, "static", seed=_data_seed(config) + 2),
        datasets.binarize(data.x_test, "static", seed=_data_seed(config) + 1),
    )


def _semi_supervised_data(config, data, batch_size):
    if data.num_classes == 0:
        raise ValueError(
            f"{data.name} has no labels, so it cannot train the semi-supervised model; "
            "use a labelled source such as an IDX directory or 'mnist'"
        )
    if data.num_classes != config.num_classes:
        raise ValueError(
            f"`num_classes` is {config.num_classes} but {data.name} has "
            f"{data.num_classes} classes; pass --num-classes {data.num_classes}"
        )
    labelled, unlabelled = datasets.labelled_subset(
        data.y_train, config.num_labels, seed=config.seed
    )
    validation_images, test_images = _fixed_bits(config, data)

    def labelled_pairs(images, labels):
        return datasets.make_dataset(
            images, labels, batch_size=batch_size, shuffle=False, seed=config.seed
        )

    return RunData(
        train=datasets.make_semi_supervised_dataset(
            data.x_train[labelled],
            data.y_train[labelled],
            data.x_train[unlabelled],
            batch_size=batch_size,
            seed=config.seed,
            dynamic_binarization=config.binarization == "dynamic",
        ),
        validation=labelled_pairs(validation_images, data.y_val),
        test=labelled_pairs(test_images, data.y_test),
        test_arrays=(np.asarray(test_images, "float32").reshape(len(test_images), -1), data.y_test),
        train_targets=data.x_train,
        image_shape=tuple(data.image_shape),
        description=f"{data.summary()}; {config.num_labels} labelled",
    )
