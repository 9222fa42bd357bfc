"""Encode images from a .npy file with a served keras-gumbel model; print the codes.

Works against TensorFlow Serving and against `keras-gumbel serve` alike:

    python serving/example_client.py images.npy --address localhost:8500 --model vae

`images.npy` holds a batch of images, [batch, 784] or [batch, 28, 28], with
values in [0, 1]. Add `--decode out.npy` to also save the decoded Bernoulli
means.
"""

import argparse
import sys

import numpy as np

from keras_gumbel.serving import ServingClient
from keras_gumbel.serving import ServingError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", help=".npy file with a batch of images")
    parser.add_argument("--address", default="localhost:8500", help="gRPC host:port")
    parser.add_argument("--model", default="vae", help="served model name")
    parser.add_argument("--label", help="version label, e.g. stable")
    parser.add_argument("--decode", metavar="OUT", help="save decoded means to OUT")
    args = parser.parse_args(argv)

    images = np.load(args.images)
    with ServingClient(args.address, args.model, version_label=args.label) as client:
        try:
            codes = client.encode(images)
            means = client.decode(codes) if args.decode else None
        except ServingError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
    np.set_printoptions(linewidth=120)
    print(f"codes: int64 {codes.shape}")
    print(codes)
    if means is not None:
        np.save(args.decode, means)
        print(f"means: float32 {means.shape} -> {args.decode}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
