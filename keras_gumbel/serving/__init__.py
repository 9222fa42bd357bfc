"""Serving exported models over TF Serving's APIs: a local server and a client.

`serve` starts a gRPC (and optionally REST) server that behaves like
`tensorflow_model_server` for SavedModels laid out as
`BASE/NAME/<version>/saved_model.pb`: same services, status codes, error
messages, version policy, labels and output serialization. It serves any
SavedModel. `ServingClient` talks to it, or to real TF Serving, with the
official protos of `tensorflow-serving-api`.

Example:

```python
from keras_gumbel.serving import ServingClient, serve

server = serve("exported/vae", port=0)
with ServingClient(server.address, "vae") as client:
    codes = client.encode(images)
    means = client.decode(codes)
server.stop()
```
"""

from keras_gumbel._extras import require_extra

# The server and client work on SavedModels and protos: no TensorFlow Probability.
require_extra(
    "keras_gumbel.serving", "serving", modules=("tensorflow", "grpc", "tensorflow_serving")
)

from keras_gumbel.serving.client import ServingClient
from keras_gumbel.serving.config import parse_version_policy
from keras_gumbel.serving.config import read_model_config_file
from keras_gumbel.serving.errors import ServingError
from keras_gumbel.serving.server import ModelServer
from keras_gumbel.serving.server import serve

__all__ = [
    "ModelServer",
    "ServingClient",
    "ServingError",
    "parse_version_policy",
    "read_model_config_file",
    "serve",
]
