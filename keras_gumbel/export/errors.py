"""The error every export failure raises."""


class ExportError(Exception):
    """An export failed or did not verify; nothing was published."""
