"""The single exception type raised by `keras_gumbel.datasets`."""


class DatasetError(Exception):
    """A dataset could not be found, read, or prepared as requested.

    Raised for missing or unreadable files, files that are not in the
    expected format, failed downloads and invalid arguments. The message is
    one line that names the offending path or value and what would work
    instead; the low-level cause, when there is one, is chained as
    `__cause__`.

    Example:

    >>> from keras_gumbel.datasets import DatasetError, load
    >>> try:
    ...     load("/no/such/dir")
    ... except DatasetError as e:
    ...     print("no data:", e)  # doctest: +ELLIPSIS
    no data: ...
    """
