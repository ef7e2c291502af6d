"""Real data, offline (spec section 10): scikit-learn's bundled 8x8 digits, MNIST from IDX
files in a local folder (``read_idx``), and the binary two-token task built from either
(``task``). ``signsim.data.SOURCES`` builds a Config's data through ``task.digits_task``
and ``task.mnist_task``; docs/real-data.md shows the whole experiment.
"""

from .digits import ImagePool, MissingDataError, load_digits, load_mnist
from .idx import read_idx
from .task import build_task, task_classes

__all__ = ["read_idx", "load_digits", "load_mnist", "ImagePool", "MissingDataError",
           "build_task", "task_classes"]
