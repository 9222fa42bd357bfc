"""`python -m keras_gumbel.serving`: runs the model server; see `server.main`."""

import sys

from keras_gumbel.serving.server import main

sys.exit(main())
