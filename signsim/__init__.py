"""signsim: exact simulation of a two-layer transformer trained by SignGD, Adam or GD.

The model, its gradients and the quantities recorded follow "On the Optimization and
Generalization of Two-layer Transformers with Sign Gradient Descent" (arXiv 2410.04870);
docs/model.md numbers every equation and names the function that implements it.

>>> import signsim
>>> result = signsim.run("fig1", steps=10)
>>> result.history["mean_value_noise"].shape   # (recorded steps, n)
(11, 20)
"""

from .config import PRESETS, Config, preset
from .data import Dataset, make_data
from .errors import SignsimFileError
from .model import Params
from .result import Result, load
from .simulate import run
from .checkpoint import resume
from .sweeps import sweep
from .loop import NonFiniteError
from .compare import compare
from . import datasets, optim, stages, sweeps, theory  # noqa: E402  (signsim.optim.register, ...)

__version__ = "0.2.0"

__all__ = ["run", "resume", "NonFiniteError", "SignsimFileError", "Config", "preset", "PRESETS",
           "Result", "load", "Dataset", "make_data", "Params", "optim", "stages", "theory",
           "sweep", "sweeps", "compare", "datasets", "__version__"]
