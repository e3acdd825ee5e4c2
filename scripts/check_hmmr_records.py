"""Read vidmine's HMMR train tfrecords with HMMR's own input code, as its trainer would, and print
what comes out: the phis (and whether any frame's are all zero) and the labels' range.

HMMR's modules are imported from a human_dynamics checkout (nothing of it is copied here):
``src/util/data_utils.py::parse_example_proto_temporal`` and, for ``--precomputed_phi=False``,
``src/util/tube_augmentation.py::TubePreprocessor`` with HMMR's default jitter (src/config.py).
HMMR was written for TensorFlow 1.8; ``import tensorflow`` is pointed at
``tensorflow.compat.v1`` and ``name_scope`` takes its old positional ``values``.

Needs TensorFlow (not a vidmine dependency), e.g. the venv of make_tf_resnet_fixture.py:

    /tmp/tfenv/bin/python scripts/check_hmmr_records.py HUMAN_DYNAMICS_DIR FILE.tfrecord \\
        [--precomputed-phi] [--T 20]
"""

from __future__ import annotations

import argparse
import sys


def _tensorflow_v1():
    import tensorflow.compat.v1 as tf

    tf.disable_v2_behavior()
    scope = tf.name_scope

    def name_scope(name, default_name=None, values=None):
        if isinstance(default_name, list):  # TF 1.8 code: name_scope(name, [values])
            default_name, values = None, default_name
        return scope(name, default_name, values)

    tf.name_scope = name_scope
    sys.modules["tensorflow"] = tf
    return tf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("human_dynamics", help="a human_dynamics checkout (its src/ is imported)")
    parser.add_argument("tfrecord")
    parser.add_argument("--precomputed-phi", action="store_true")
    parser.add_argument("--T", type=int, default=20)
    parser.add_argument("--reads", type=int, default=2)
    args = parser.parse_args()
    tf = _tensorflow_v1()
    sys.path.insert(0, args.human_dynamics)
    from src.util import data_utils, tube_augmentation

    queue = tf.train.string_input_producer([args.tfrecord], shuffle=False)
    _, serialized = tf.TFRecordReader().read(queue)
    data = data_utils.parse_example_proto_temporal(
        serialized, T=args.T, precomputed_phi=args.precomputed_phi
    )
    data["labels"] = data["labels"][:, :, :25]
    if args.precomputed_phi:
        data["images"] = tf.map_fn(data_utils.rescale_image, data["images"])
    else:  # src/config.py defaults: trans 20/20, scale 0.3/0.3, rotate 0/5
        augment = tube_augmentation.TubePreprocessor(224, 20, 20, 0.3, 0.3, 0, 5)
        keys = ("images", "image_sizes", "labels", "centers", "poses", "gt3ds")
        data.update(augment(**{k: data[k] for k in keys}))
    data["labels"] = tf.transpose(data["labels"], [0, 2, 1])
    fetch = {k: data[k] for k in ("images", "labels", "phis") if k in data}
    with tf.Session() as sess:
        coord = tf.train.Coordinator()
        threads = tf.train.start_queue_runners(sess, coord)
        for _ in range(args.reads):
            out = sess.run(fetch)
            labels = out["labels"]
            xy = labels[labels[:, :, 2] > 0][:, :2]
            low, high = (", ".join(f"{v:.2f}" for v in ends) for ends in (xy.min(0), xy.max(0)))
            line = (
                f"images {out['images'].shape}, labels {labels.shape}, "
                f"visible joints {len(xy)}, x/y from ({low}) to ({high})"
            )
            if "phis" in out:
                zero = int((~out["phis"].any(axis=1)).sum())
                line += f", phis {out['phis'].shape} ({zero} frames all zero)"
            print(line)
        coord.request_stop()
        coord.join(threads)


if __name__ == "__main__":
    main()
