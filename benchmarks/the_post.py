"""The post's own program: its deeper network on TensorFlow 1's graph API, as the post wrote it.

Run with TensorFlow 2's ``tf.compat.v1`` (TensorFlow is a benchmark dependency only, never the package's):

    python -m venv .venv-tf && .venv-tf/bin/pip install tensorflow
    .venv-tf/bin/python benchmarks/the_post.py --data-dir ../shared/data

``tensorflow.examples.tutorials.mnist.input_data`` is gone from TensorFlow 2, so ``read_data_sets`` below does what
it did, on the same four files the rest of the project reads: the first 5,000 training images held back for
validation, the other 55,000 for training in file order, pixels as float32 in [0, 1], one-hot labels. Everything
after it is the post's code, its test loop included, which also runs the optimizer on each test batch (the bug
lit_mnist does not port). The last line printed is the test accuracy, which versus_post.py reads.
"""

import argparse
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import tensorflow.compat.v1 as tf


def read_data_sets(data_dir: str, validation_size: int = 5000) -> SimpleNamespace:
    """The split and arrays of TensorFlow 1's ``input_data.read_data_sets(data_dir, one_hot=True)``."""
    raw = Path(data_dir) / "MNIST" / "raw"

    def images(name: str) -> np.ndarray:
        pixels = np.fromfile(raw / name, dtype=np.uint8, offset=16).reshape(-1, 784)
        return pixels.astype(np.float32) * (1.0 / 255.0)

    def one_hot(name: str) -> np.ndarray:
        labels = np.fromfile(raw / name, dtype=np.uint8, offset=8)
        return np.eye(10, dtype=np.float64)[labels]  # input_data's one-hot arrays were float64

    train_images, train_labels = images("train-images-idx3-ubyte"), one_hot("train-labels-idx1-ubyte")
    return SimpleNamespace(
        train=SimpleNamespace(images=train_images[validation_size:], labels=train_labels[validation_size:]),
        validation=SimpleNamespace(images=train_images[:validation_size], labels=train_labels[:validation_size]),
        test=SimpleNamespace(images=images("t10k-images-idx3-ubyte"), labels=one_hot("t10k-labels-idx1-ubyte")),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="the folder holding MNIST/raw/, as for lit_mnist")
    parser.add_argument("--log-dir", default="/tmp/the_post_logs", help="where the graph is written for TensorBoard")
    args = parser.parse_args()
    tf.disable_eager_execution()  # TensorFlow 1's graphs and sessions, as the post ran them

    # From here on, the post's code.
    mnist = read_data_sets(args.data_dir)
    train_images = mnist.train.images
    train_labels = mnist.train.labels
    test_images = mnist.test.images
    test_labels = mnist.test.labels

    graph = tf.Graph()
    with graph.as_default():
        input = tf.placeholder(tf.float32, shape=(None, 784))
        labels = tf.placeholder(tf.float32, shape=(None, 10))

        layer1_weights = tf.Variable(tf.random_normal([784, 500]))
        layer1_bias = tf.Variable(tf.zeros([500]))
        layer1_output = tf.nn.relu(tf.matmul(input, layer1_weights) + layer1_bias)

        layer2_weights = tf.Variable(tf.random_normal([500, 500]))
        layer2_bias = tf.Variable(tf.zeros([500]))
        layer2_output = tf.nn.relu(tf.matmul(layer1_output, layer2_weights) + layer2_bias)

        layer3_weights = tf.Variable(tf.random_normal([500, 10]))
        layer3_bias = tf.Variable(tf.zeros([10]))
        logits = tf.matmul(layer2_output, layer3_weights) + layer3_bias

        cost = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(logits=logits, labels=labels))

        learning_rate = 0.0001
        optimizer = tf.train.GradientDescentOptimizer(learning_rate).minimize(cost)

        predictions = tf.nn.softmax(logits)
        correct_prediction = tf.equal(tf.argmax(labels, 1), tf.argmax(predictions, 1))
        accuracy = tf.reduce_mean(tf.cast(correct_prediction, tf.float32))

    with tf.Session(graph=graph) as session:
        tf.summary.FileWriter(args.log_dir, session.graph)  # the post's TensorBoard picture of the graph
        tf.global_variables_initializer().run()

        num_steps = 5000
        batch_size = 100
        for step in range(num_steps):
            offset = (step * batch_size) % (train_labels.shape[0] - batch_size)
            batch_images = train_images[offset : (offset + batch_size), :]
            batch_labels = train_labels[offset : (offset + batch_size), :]
            feed_dict = {input: batch_images, labels: batch_labels}

            _, c, acc = session.run([optimizer, cost, accuracy], feed_dict=feed_dict)
            if step % 100 == 0:
                print("Cost: ", c)
                print("Accuracy: ", acc * 100.0, "%")

        # Test
        num_test_batches = int(len(test_images) / 100)
        total_accuracy = 0
        total_cost = 0
        for step in range(num_test_batches):
            offset = (step * batch_size) % (train_labels.shape[0] - batch_size)
            batch_images = test_images[offset : (offset + batch_size)]
            batch_labels = test_labels[offset : (offset + batch_size)]
            feed_dict = {input: batch_images, labels: batch_labels}

            _, c, acc = session.run([optimizer, cost, accuracy], feed_dict=feed_dict)
            total_cost = total_cost + c
            total_accuracy = total_accuracy + acc

        print("Test Cost: ", total_cost / num_test_batches)
        print("Test accuracy: ", total_accuracy * 100.0 / num_test_batches, "%")


if __name__ == "__main__":
    main()
