"""The single exception type of `keras_gumbel.serving`, on both sides of the wire."""

import grpc

# TF Serving cuts gRPC error details at this many characters and appends
# "...TRUNCATED" (model_servers/grpc_status_util.cc).
MAX_DETAILS_LENGTH = 1024


def truncate_details(details):
    """Cuts `details` to TF Serving's limit, marking the cut as it does."""
    if len(details) > MAX_DETAILS_LENGTH:
        return details[:MAX_DETAILS_LENGTH] + "...TRUNCATED"
    return details


class ServingError(Exception):
    """A request failed with a gRPC status code other than OK.

    The server raises it to answer a request with `code` and `details`, which
    reach the client exactly as TF Serving would send them. `ServingClient`
    raises it for every failed call, keeping the server's code and details
    and adding a message that names the call and the server.

    Clients should branch on `code` and, where they must, on a stable
    substring of `details` (e.g. `"Servable not found"`): TF Serving's texts
    differ slightly between versions.

    Args:
        code: `grpc.StatusCode`. The status of the failed call.
        details: str. The server's error message, possibly empty.
        message: str or None. What `str(error)` shows; defaults to
            `"CODE: details"`.

    Example:

    >>> import grpc
    >>> error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found")
    >>> error.code.name, str(error)
    ('NOT_FOUND', 'NOT_FOUND: Servable not found')
    """

    def __init__(self, code, details, message=None):
        if not isinstance(code, grpc.StatusCode):
            raise TypeError(
                "Invalid value received for argument `code`. Expected a "
                f"grpc.StatusCode. Received: code={code!r}"
            )
        self.code = code
        self.details = str(details)
        super().__init__(message or f"{code.name}: {self.details}")

    def __reduce__(self):
        return (type(self), (self.code, self.details, str(self)))
