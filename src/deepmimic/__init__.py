"""deepmimic: mentor-student training without labels.

Train a mentor on a small labelled set, label a large unlabelled set with its softmax
outputs, and train smaller, faster students on those soft labels alone
(DeepMimic paper, ../shared/papers/deepmimic.md).
"""

__version__ = "0.1.0"
