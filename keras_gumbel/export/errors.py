"""The error every export failure raises, and how a cause becomes its one line."""

import re

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class ExportError(Exception):
    """An export failed or did not verify; nothing was published."""


def first_line(error):
    """`Type: message`, the message's first informative line.

    Keras wraps errors raised in a layer's call in "Exception encountered
    when calling ..." with the arguments below; the line that says what
    went wrong is the one after.
    """
    lines = [_ANSI.sub("", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line and not line.startswith("Exception encountered")]
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def trace_signatures(functions):
    """Traces every `tf.function` of `{signature name: function}` and returns them.

    Raises:
        ExportError: If a signature cannot be traced, in one line naming it.
    """
    for name, function in functions.items():
        try:
            function.get_concrete_function()
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - reported as one line, nothing written
            raise ExportError(f"cannot trace signature {name!r}: {first_line(e)}") from None
    return functions
