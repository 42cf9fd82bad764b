"""The datasets repro knows, by name, and their image shapes.

This is vocabulary shared by the spec (which datasets a panel may name), the planner and the
throughput probe (the input shape a model is built for) and the downloader, repro.data (what a
fetched file must hold). It imports nothing, so reading a spec never imports the downloader.
"""

DATASETS = ("mnist", "fashion_mnist", "cifar10")

# Raw shapes (train images, test images) each dataset must have.
RAW_SHAPES = {
    "mnist": ((60000, 28, 28), (10000, 28, 28)),
    "fashion_mnist": ((60000, 28, 28), (10000, 28, 28)),
    "cifar10": ((50000, 32, 32, 3), (10000, 32, 32, 3)),
}

# (height, width, channels) of one image as a model takes it: grey images have one channel.
INPUT_SHAPES = {name: train[1:] if len(train) == 4 else (*train[1:], 1)
                for name, (train, _test) in RAW_SHAPES.items()}
