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
from repro import engine, models, pruning, race  # noqa: E402

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
    if strategy is not None:  # a race of 3 trials taking turns on the mirrored engine
        order, evals, kw = engine.DataOrder(256, 0), list(range(2, 41, 2)), {}
        hps = [{"learning_rate": lr, "momentum": 0.9} for lr in (0.0003, 0.001, 0.003)]
        inits = [models.initial_weights(eng.model, 10 + i) for i in range(3)]
        alone = [eng.run_trial(order=order, batch_size=32, init=inits[i], mask=mask, hp=hps[i],
                               eval_steps=evals, goal=0.05, early_exit=False) for i in range(3)]
        runs = {i: eng.start_trial(order=order, batch_size=32, init=inits[i], mask=mask,
                                   hp=hps[i], goal=0.05, early_exit=False, keep_state=True)
                for i in range(3)}
        raced, _ = race.race(runs, evals, 40, capping=False)
        out["race_equals_alone"] = all(
            (a.status, a.steps, a.val_errors) == (raced[i][0].status, raced[i][0].steps,
                                                  raced[i][0].val_errors)
            for i, a in enumerate(alone))
print(json.dumps(out))
