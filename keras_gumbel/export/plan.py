"""The interface of an export plan: what `export_model` writes and checks.

An export plan is built once per export, before anything is written: it
checks the model and the sample inputs and computes what the Keras model
answers on them. `export_model` then writes the plan's endpoints and
verifies the written SavedModel against the same plan's cases (see
`keras_gumbel.export.checks.verify_export`).

Two plans implement it: `AnyModelExport`, for a model with a
discrete-codes layer (`encode`, `predict` and optionally `decode`), and
`ModelSignaturesExport`, for a model that declares its own signatures with
an `export_signatures(sample_inputs)` method (the package's VAEs and
stochastic binary networks among them).
"""

import abc


class ExportPlan(abc.ABC):
    """What one export writes and checks.

    Attributes:
        model: The Keras model being exported.
        signatures: Tuple of the signature names, in order; the first one
            becomes `serving_default`.
        tracked: List of the Keras objects (layers, models) whose variables
            the SavedModel holds; every variable an endpoint reads belongs
            to one of them.
        num_examples: Integer. The number of sample examples the export is
            verified on.
    """

    model = None
    signatures = ()
    tracked = ()
    num_examples = 0

    @abc.abstractmethod
    def endpoints(self):
        """The traced signature functions, `{name: tf.function}`.

        In the order of `signatures`; each function has a fully specified,
        batch-first input signature.

        Raises:
            ExportError: If a signature cannot be traced.
        """

    @abc.abstractmethod
    def cases(self):
        """The verification cases, `{name: (inputs, expected outputs)}`.

        One per signature: the inputs as `{input name: NumPy array}` and
        what the Keras model answers on them, `{output name: NumPy array}`
        (integer outputs are compared exactly, as int64).
        """

    @abc.abstractmethod
    def contract(self, endpoints):
        """What a client needs to know, recorded in `verification.json`.

        Args:
            endpoints: What `endpoints()` returned.

        Returns:
            A JSON-serializable dict that lists the signatures under
            `"signatures"`.
        """
