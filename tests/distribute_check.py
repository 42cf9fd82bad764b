"""Helper for test_distribute.py, run in a fresh process: TensorFlow's logical devices must be
configured before anything initialises them. Splits the CPU into two logical devices and trains
the same trial (SYNTHETIC data of conftest.py) on one device and on a 2-replica
MirroredStrategy; prints both outcomes as JSON."""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
sys.path.insert(0, os.path.dirname(__file__))
from conftest import make_data  # noqa: E402
from repro import engine, models, pruning  # noqa: E402

optimizer, sparsity = sys.argv[1], float(sys.argv[2])
data = make_data(n_train=256, n_val=512)
devices = [d.name for d in tf.config.list_logical_devices("CPU")]
out = {"devices": devices}
for name, strategy in (("one_device", None),
                       ("mirrored_2", tf.distribute.MirroredStrategy(devices))):
    eng = engine.Engine(data, "simple_cnn", optimizer, "constant", eval_chunk=128, strategy=strategy)
    init = models.initial_weights(eng.model, 3)
    mask = None
    if sparsity:
        mask = pruning.masks_from_scores(
            pruning.connection_sensitivity(eng.model, init, data.x_train, data.y_train), sparsity)
    hp = {"learning_rate": 0.0005, "momentum": 0.9}
    r = eng.run_trial(order=engine.DataOrder(256, 0), batch_size=32, init=init, mask=mask, hp=hp,
                      eval_steps=list(range(2, 81, 2)), goal=0.05, early_exit=False)
    weights = [np.asarray(w.numpy()) for w in eng.weights]
    out[name] = {"status": r.status, "k": r.steps_to_result, "steps": r.steps,
                 "curve": r.val_errors,
                 "replicas": strategy.num_replicas_in_sync if strategy else 1,
                 "pruned_nonzero": int(sum(np.count_nonzero(w[m == 0]) for w, m in zip(weights, mask)))
                 if mask else 0}
print(json.dumps(out))
