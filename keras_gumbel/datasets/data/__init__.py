"""Data files shipped with the package, and the script that made them.

`mnist_sample.npz` is read by `keras_gumbel.datasets.load("mnist-sample")`;
`make_mnist_sample.py` rebuilds it from its source, byte for byte.
"""
