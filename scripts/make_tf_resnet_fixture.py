"""Write tests/data/tf_resnet_v2_tiny/: a TensorFlow checkpoint of a small TF-slim ResNet v2 and
the features TF-slim computes with it, so the tests can check vidmine's tensor-bundle reader and
its torch ResNet v2 against TensorFlow itself without TensorFlow installed.

The network is ``tf_slim.nets.resnet_v2.resnet_v2`` (the code HMMR's ``encoder_resnet`` calls,
``tensorflow.contrib.slim``'s before TF-slim left TensorFlow) in HMMR's ``resnet_arg_scope``,
with the same four blocks as ``resnet_v2_50`` but thinner and shorter (so the files are small):
the stride is on the last unit of each block, block 1 ends in an identity-depth strided unit
(the subsampled shortcut) and every block's first unit has a projection shortcut. Every variable,
batch-norm statistics included, is random. Two input sizes, one odd, exercise TensorFlow's
'SAME' padding. The checkpoint also holds variables the encoder must ignore (a regressor, an
Adam slot, the global step), as HMR's does.

Needs TensorFlow and TF-slim (not vidmine dependencies); run it in a throwaway environment:

    python -m venv /tmp/tfenv && /tmp/tfenv/bin/pip install tensorflow-cpu==2.15.1 tf-slim==1.1.0
    /tmp/tfenv/bin/python scripts/make_tf_resnet_fixture.py tests/data/tf_resnet_v2_tiny
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

# (scope, base depth, units, stride): resnet_v2_50's layout is 64/3/2, 128/4/2, 256/6/2, 512/3/1.
TINY_BLOCKS = (("block1", 4, 2, 2), ("block2", 8, 2, 2), ("block3", 8, 1, 2), ("block4", 16, 2, 1))
INPUT_SIZES = (32, 37)


def _alias_legacy_layers() -> None:
    """TensorFlow 2.15 loads its v1 layers from ``tf_keras.legacy_tf_layers``; tf-keras 2.15
    keeps them under ``tf_keras.src``. Alias the modules TF-slim's layers reach."""
    import importlib

    for name in ("base", "core", "convolutional", "normalization", "pooling"):
        module = importlib.import_module(f"tf_keras.src.legacy_tf_layers.{name}")
        sys.modules[f"tf_keras.legacy_tf_layers.{name}"] = module
    sys.modules["tf_keras.legacy_tf_layers"] = importlib.import_module(
        "tf_keras.src.legacy_tf_layers"
    )


def _write_resnet_v2_50_variables(path: Path) -> None:
    """Name, shape and trainability of every variable of the full ``resnet_v2_50`` as HMMR
    builds it (``num_classes=None``), one per line: the list the state-dict conversion maps."""
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from tf_slim.nets import resnet_utils, resnet_v2

    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (1, 224, 224, 3))
        with slim.arg_scope(resnet_utils.resnet_arg_scope(weight_decay=0.001)):
            net, _ = resnet_v2.resnet_v2_50(images, num_classes=None, is_training=False)
        trainable = {v.name for v in tf.trainable_variables()}
        lines = [
            f"{v.op.name} {','.join(str(d) for d in v.shape.as_list())} "
            f"{'trainable' if v.name in trainable else 'statistic'}"
            for v in tf.global_variables()
        ]
        lines.append(f"# output {','.join(str(d) for d in net.shape.as_list())}")
    path.write_text("\n".join(lines) + "\n")


def main(out_dir: Path) -> None:
    import tensorflow.compat.v1 as tf
    import tf_slim as slim
    from tf_slim.nets import resnet_utils, resnet_v2

    tf.disable_eager_execution()
    _alias_legacy_layers()
    rng = np.random.default_rng(0)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks = [resnet_v2.resnet_v2_block(s, base_depth=d, num_units=n, stride=st)
              for s, d, n, st in TINY_BLOCKS]  # fmt: skip
    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, (None, None, None, 3))
        with slim.arg_scope(resnet_utils.resnet_arg_scope(weight_decay=0.001)):
            net, _ = resnet_v2.resnet_v2(
                images, blocks, num_classes=None, is_training=False, scope="resnet_v2_50"
            )
        features = tf.squeeze(net, axis=[1, 2])
        with tf.variable_scope("3D_module"):
            tf.get_variable("fc1/weights", (8, 3))
        tf.get_variable("resnet_v2_50/conv1/weights/Adam", (7, 7, 3, 64))
        tf.train.get_or_create_global_step()
        assigns = []
        for var in tf.global_variables():
            shape = var.shape.as_list()
            if var.dtype.base_dtype == tf.int64:
                value = np.array(642561, np.int64)
            elif "moving_variance" in var.name:
                value = rng.uniform(0.5, 2.0, shape).astype(np.float32)
            elif "gamma" in var.name:
                value = rng.uniform(0.5, 1.5, shape).astype(np.float32)
            else:
                value = rng.normal(0.0, 0.3, shape).astype(np.float32)
            assigns.append(var.assign(value))
        saver = tf.train.Saver()
        with tf.Session(graph=graph) as sess:
            sess.run(assigns)
            saver.save(sess, str(out_dir / "model.ckpt"), write_meta_graph=False)
            reference = {}
            for size in INPUT_SIZES:
                x = rng.uniform(-1, 1, (2, size, size, 3)).astype(np.float32)
                reference[f"input_{size}"] = x
                reference[f"features_{size}"] = sess.run(features, {images: x})
    _write_resnet_v2_50_variables(out_dir / "resnet_v2_50_variables.txt")
    (out_dir / "checkpoint").unlink(missing_ok=True)  # TF's text pointer file, not needed
    np.savez(out_dir / "reference.npz", **reference)
    print(f"wrote {out_dir}: " + ", ".join(f"{k} {v.shape}" for k, v in reference.items()))


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tf_resnet_v2_tiny"))
