"""The .npz file of a Result: its members, and reading one back, every member checked against
the configs stored with it before anything in it is trusted.

A file is a zip archive of uncompressed ``.npy`` members (``numpy.savez``; never a pickle).
R is the number of replicas, ``[R,]`` a leading replica axis (a batch only), T and T_test
the lengths of ``tracker.schedule(steps, record_every)`` and ``(steps, test_every)``, u the
active coordinates of sparse weights (at most ``min(d, 1 + n s)``):

- ``format``: str, ``"signsim-result-2"``; ``configs``: str, a JSON list of the replicas'
  Configs (every field); ``batched``: bool; ``vary``: str, a JSON list of Config fields;
- ``steps``, ``test_steps``: int64 (T,), (T_test,);
- ``history.NAME``: float64 ([R,] T, ``*tracker.shapes(config)[NAME]``), T_test for the
  test names;
- ``P.kind`` for P in ``params``, ``init_params``: str, ``"dense"`` (a single run) with
  ``P.W_Q``, ``P.W_K``, ``P.W_V``: float64 (m_k, d), (m_k, d), (2, m_v, d); or
  ``"sparse"`` with ``P.coords``: int64 ([R,] u), sorted then -1 padding,
  ``P.W_Q_active``, ``P.W_K_active``, ``P.W_V_active``: float64 ([R,] m_k, u),
  ([R,] m_k, u), ([R,] 2, m_v, u), ``P.keys``: uint64 ([R,]), ``P.d``: int64 (),
  ``P.sigma_0``: float64 ([R,]), and under weight decay ``P.init_scale``: float64 ([R,]),
  the factor (1 - lr wd)^t of the init off ``P.coords`` (absent: 1);
- for D in ``dataset``, ``test_dataset``: ``D.replicas``, ``D.d``: int64 () (R, or -1 for
  a single run; d), ``D.mu_norm``: float64 (), ``D.y``, ``D.signal_position``: float64,
  int64 (R or 1, n), ``D.noise_index``, ``D.noise_value``: int64, float64 (R or 1, n, s)
  (n_test for the test set); for real data (a data set class of ``storage`` "dense",
  ``signsim.data.dataset_class``), ``D.signal``, ``D.noise``: float64 (R or 1, n, d)
  instead of the noise index and values, each signal token of norm mu_norm (or 0), and
  ``D.image``: int64 (R or 1, n), each image's row in its pool (>= 0).

``read`` checks, in this order, and refuses with one ``SignsimFileError`` at the first
problem: the zip archive and its directory (no compressed, duplicated or non-.npy member,
none extending past the end of the file); then each member's .npy header (its claimed size
against the member's size, its dtype, its shape against the configs) before its data. The
small members that say what the others must be come first (``format``, the configs: every
field given, none unknown, valid, the shape fields shared by all replicas; ``steps``,
``test_steps``, the weights' ``kind``); then every other header, before any of their data
is read; then those arrays one at a time, and their values (d, mu_norm, sigma_0 and the
replica count against the configs, index ranges).
History names may be any subset of ``tracker.DIMS`` (``run(..., record=...)``); ``steps``
may be a prefix of the schedule (a run stopped early, ``loop.NonFiniteError.result``).
Unknown members are refused.

The first format, ``"signsim-result-1"``, is still read: it has ``config`` (one Config as
JSON), ``seeds`` (int64 (R,), a batch only) and ``varied.FIELD`` (float64 (R,)) instead
of ``configs``, ``batched`` and ``vary``, and may store one scalar sigma_0 for a batch.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct
import warnings
import zipfile
from dataclasses import fields

import numpy as np

from .config import DATA_FIELDS as CONFIG_DATA_FIELDS
from .config import OPTIMIZER_FIELDS
from .config import Config
from .data import Dataset, TokenDataset, dataset_class
from .errors import SignsimFileError
from .model import Params
from .sparse import SparseParams
from .tracker import DIMS, TEST_NAMES, History, schedule, shapes

__all__ = ["FORMAT", "FORMAT_1", "DATA_FIELDS", "DENSE_DATA_FIELDS", "arrays_of", "read"]

FORMAT = "signsim-result-2"
FORMAT_1 = "signsim-result-1"  # before the per-replica configs: still read
DATA_FIELDS = ("y", "signal_position", "noise_index", "noise_value")
DENSE_DATA_FIELDS = ("y", "signal_position", "signal", "noise", "image")  # real data
# the Config fields all replicas of one file share: they fix the shapes of its arrays
SHAPE_FIELDS = ("n", "d", "s", "n_test", "m_k", "m_v", "mu_norm", "steps", "record_every",
                "test_every")
_SYNTHETIC = {f.name: f.default for f in fields(Config) if f.name in CONFIG_DATA_FIELDS}
# saved before Signum, Lion, RMSProp and weight decay (issue 15): their defaults reproduce it
_NO_DECAY = {f.name: f.default for f in fields(Config) if f.name in OPTIMIZER_FIELDS}
_MAX_HEADER = 10_000  # characters of a .npy header, as numpy's own default limit
_CHUNK = 1 << 20  # bytes read from a member at a time
_DTYPES = {"f": "float64", "i": "int64", "u": "uint64", "b": "bool", "U": "str"}


class _Problem(Exception):
    """What is wrong, in words; ``_Archive.guard`` turns it into a SignsimFileError."""


class _Archive:
    """The members of an open zip archive, each read only after its .npy header is checked:
    the dtype and shape against what is expected, the size the header claims against the
    size of the member, and that against the size of the file."""

    def __init__(self, path, fh):
        self.path = path
        size = os.fstat(fh.fileno()).st_size
        self.zip = self.guard("it is not a zip archive (a .npz file)", zipfile.ZipFile, fh)
        self.infos, self._headers = {}, {}
        for info in self.guard("its zip directory is damaged", self.zip.infolist):
            key = info.filename[:-4] if info.filename.endswith(".npy") else None
            if key is None:
                raise self.error(f"its member {info.filename!r} is not a .npy array")
            if key in self.infos:
                raise self.error(f"it holds member {key!r} twice")
            if info.flag_bits & 0x1 or info.compress_type != zipfile.ZIP_STORED:
                raise self.error(f"its member {key!r} is compressed or encrypted; signsim "
                                 "writes uncompressed members only")
            if info.file_size != info.compress_size or info.header_offset + info.file_size > size:
                raise self.error(f"its member {key!r} claims {info.file_size} bytes, more than "
                                 f"the file holds ({size} bytes): the file is truncated")
            self.infos[key] = info

    def error(self, problem: str) -> SignsimFileError:
        return SignsimFileError(self.path, problem)

    def guard(self, what: str, fn, *args):
        """``fn(*args)``; any exception it raises becomes one SignsimFileError."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # e.g. numpy's Python 2 header fallback
                return fn(*args)
        except _Problem as exc:
            raise self.error(f"{what}: {exc}") from None
        except MemoryError:  # this machine's, not the file's: every size was checked first
            raise
        except Exception as exc:
            raise self.error(f"{what} ({type(exc).__name__}: {exc})") from None

    def header(self, key: str) -> tuple:
        """(shape, fortran_order, dtype, data offset) of member ``key``, its claimed size
        checked against the member's size; no array data is read."""
        if key not in self.infos:
            raise self.error(f"it lacks the member {key!r}")
        if key not in self._headers:
            self._headers[key] = self.guard(f"its member {key!r} is damaged or not a .npy array",
                                            self._header, self.infos[key])
        return self._headers[key]

    def _header(self, info) -> tuple:
        with self.zip.open(info) as fp:
            version = np.lib.format.read_magic(fp)
            if version not in ((1, 0), (2, 0)):
                raise _Problem(f".npy version {version[0]}.{version[1]}; signsim writes 1.0")
            width = 2 if version == (1, 0) else 4
            raw = fp.read(width)
            (length,) = struct.unpack("<H" if width == 2 else "<I", raw)
            if length > _MAX_HEADER:
                raise _Problem(f"its header claims {length} bytes (at most {_MAX_HEADER})")
            text = io.BytesIO(raw + fp.read(length))
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, fortran, dtype = read(text)
        if dtype.hasobject:
            raise _Problem("it holds a Python object (pickle), which signsim never writes or "
                           "loads")
        if any(k < 0 for k in shape):
            raise _Problem(f"its header claims the negative shape {shape}")
        offset = 8 + width + length
        claimed, held = math.prod(shape) * dtype.itemsize, info.file_size - offset
        if claimed != held:
            raise _Problem(f"its header claims shape {shape} of {dtype} ({claimed} bytes), but "
                           f"the member holds {held} bytes of data")
        return shape, fortran, dtype, offset

    def check(self, key: str, kind: str, shape: tuple, implied: str = "") -> tuple:
        """Check member ``key``'s header: dtype ``kind`` (a key of ``_DTYPES``) and
        ``shape`` (None: any length >= 1). Returns the shape found."""
        found, _, dtype, _ = self.header(key)
        want = np.dtype(_DTYPES[kind]) if kind != "U" else None
        ok = dtype.fields is None and dtype.subdtype is None and (
            dtype.kind == "U" if want is None else
            (dtype.kind, dtype.itemsize) == (want.kind, want.itemsize))
        if not ok:
            raise self.error(f"its member {key!r} has dtype {dtype}, not {_DTYPES[kind]}")
        if len(found) != len(shape) or any(w is not None and f != w or w is None and f < 1
                                           for f, w in zip(found, shape)):
            text = str(shape).replace("None", "k")
            raise self.error(f"its member {key!r} has shape {found}, but {text} is expected"
                             + (f" from {implied}" if implied else ""))
        return found

    def array(self, key: str) -> np.ndarray:
        """Member ``key`` (its header checked first), read in chunks into one array."""
        shape, fortran, dtype, offset = self.header(key)
        return self.guard(f"its member {key!r} cannot be read", self._array, key, shape,
                          fortran, dtype, offset)

    def _array(self, key, shape, fortran, dtype, offset) -> np.ndarray:
        count = math.prod(shape)
        buf = bytearray(count * dtype.itemsize)  # at most the member's size: checked
        view = memoryview(buf)
        with self.zip.open(self.infos[key]) as fp:
            fp.read(offset)  # read, not seek: every byte passes the CRC check
            done = 0
            while done < len(buf):
                chunk = fp.read(min(_CHUNK, len(buf) - done))
                if not chunk:
                    raise _Problem(f"it ends after {done} of {len(buf)} bytes of data")
                view[done:done + len(chunk)] = chunk
                done += len(chunk)
            fp.read(1)  # at the end: the CRC of the member is checked
        out = np.frombuffer(buf, dtype, count) if buf else np.empty(count, dtype)
        out = out.reshape(shape[::-1]).T if fortran else out.reshape(shape)
        return out.astype(dtype.newbyteorder("="), copy=False)

    def text(self, key: str, limit: int | None = None) -> str:
        """String member ``key``, of at most ``limit`` characters."""
        self.check(key, "U", ())
        if limit is not None and self.header(key)[2].itemsize > 4 * limit:
            raise self.error(f"its member {key!r} is longer than {limit} characters")
        return self.guard(f"its member {key!r} is not a string", lambda: str(self.array(key)))

    def json(self, key: str):
        text = self.text(key)
        return self.guard(f"its member {key!r} is not valid JSON", json.loads, text)


def arrays_of(result) -> dict:
    """The members of ``result``'s file (the table above), name -> ndarray."""
    arrays = {"format": np.array(FORMAT), "steps": result.steps, "test_steps": result.test_steps,
              "configs": np.array(json.dumps([c.to_dict() for c in result.configs])),
              "batched": np.array(result.batched), "vary": np.array(json.dumps(result.vary))}
    for name, value in result.history.items():
        arrays[f"history.{name}"] = value
    for p in ("params", "init_params"):
        w = getattr(result, p)
        parts = ({"kind": np.array("dense"), **w._asdict()} if isinstance(w, Params) else
                 {"kind": np.array("sparse"), **w.to_arrays(), "d": np.array(w.d, np.int64)})
        arrays.update({f"{p}.{k}": v for k, v in parts.items()})
    for D in ("dataset", "test_dataset"):
        data = getattr(result, D)
        items = data if isinstance(data, list) else [data]
        R = len(items) if isinstance(data, list) else -1
        arrays.update({f"{D}.replicas": np.array(R, np.int64),
                       f"{D}.d": np.array(items[0].d, np.int64),
                       f"{D}.mu_norm": np.array(items[0].mu_norm, np.float64)})
        names = DENSE_DATA_FIELDS if items[0].storage == "dense" else DATA_FIELDS
        arrays.update({f"{D}.{k}": np.stack([getattr(x, k) for x in items]) for k in names})
    return arrays


def read(path) -> dict:
    """The fields of the Result stored at ``path``, every member checked first.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    dict
        Keyword arguments of ``Result``.

    Raises
    ------
    SignsimFileError
        For any problem of the file's content (not a zip, not a signsim result, a member
        missing, unknown, of a wrong dtype or shape, a config contradicting the arrays, a
        pickle, a truncated or damaged member).
    OSError
        If ``path`` cannot be opened (``FileNotFoundError`` if it does not exist).
    """
    with open(path, "rb") as fh:
        archive = _Archive(path, fh)
        with archive.zip:
            return _read(archive)


def _read(a: _Archive) -> dict:
    if "format" not in a.infos:
        raise a.error("it is not a signsim result (it has no 'format' member)")
    kind = a.text("format", 64)
    if kind not in (FORMAT, FORMAT_1):
        raise a.error(f"it is not a signsim result: its format is {kind!r}, not {FORMAT!r} "
                      f"(or the older {FORMAT_1!r})")
    configs, batched, vary, known = (_configs_2 if kind == FORMAT else _configs_1)(a)
    c, R = configs[0], len(configs)
    for name in SHAPE_FIELDS + ("data",):
        values = sorted({getattr(x, name) for x in configs})
        if len(values) > 1:
            raise a.error(f"its replicas disagree on {name} ({values}); the arrays of one "
                          "file share it")
    implied = (f"the stored configs ({R} replicas, " if batched else "the stored config (") + \
        ", ".join(f"{k}={getattr(c, k)}" for k in SHAPE_FIELDS if k != "mu_norm") + ")"
    lead = (R,) if batched else ()
    steps = {key: _steps(a, key, c.steps, every, implied)
             for key, every in (("steps", c.record_every), ("test_steps", c.test_every))}
    _check_stop(a, c, steps["steps"], steps["test_steps"])
    T, T_test = len(steps["steps"]), len(steps["test_steps"])
    want = {"steps": ("i", (T,)), "test_steps": ("i", (T_test,))}
    record = shapes(c)
    for key in a.infos:
        name = key[len("history."):]
        if key.startswith("history.") and name in DIMS:
            want[key] = ("f", lead + (T_test if name in TEST_NAMES else T,) + record[name])
    for p in ("params", "init_params"):
        want.update(_params_members(a, p, c, lead, implied, kind == FORMAT_1))
    for D, count in (("dataset", c.n), ("test_dataset", c.n_test)):
        want.update(_data_members(D, c, (lead or (1,)) + (count,)))
    missing = sorted(set(want) - set(a.infos))
    unknown = sorted(set(a.infos) - set(want) - known)
    if missing:
        raise a.error(f"it lacks the member(s) {missing} (expected from {implied})")
    if unknown:
        raise a.error(f"it holds unknown member(s) {unknown}")
    for key, (dtype, shape) in want.items():  # every header before any data
        a.check(key, dtype, shape, implied)
    return _values(a, configs, batched, vary, [k for k in want if k.startswith("history.")],
                   steps)


def _data_members(D: str, c: Config, rows: tuple) -> dict:
    """The members of data set ``D`` with ``rows`` = (R or 1, count) samples, by the
    storage its class declares (``signsim.data.dataset_class``)."""
    out = {f"{D}.replicas": ("i", ()), f"{D}.d": ("i", ()), f"{D}.mu_norm": ("f", ()),
           f"{D}.y": ("f", rows), f"{D}.signal_position": ("i", rows)}
    if dataset_class(c).storage == "dense":
        return {**out, f"{D}.signal": ("f", rows + (c.d,)), f"{D}.noise": ("f", rows + (c.d,)),
                f"{D}.image": ("i", rows)}
    return {**out, f"{D}.noise_index": ("i", rows + (c.s,)),
            f"{D}.noise_value": ("f", rows + (c.s,))}


def _steps(a: _Archive, key: str, steps: int, every: int, implied: str) -> np.ndarray:
    """Member ``key``: ``schedule(steps, every)``, or a prefix of it (a run stopped early,
    as ``loop.NonFiniteError.result``)."""
    full = schedule(steps, every)
    shown = ", ".join(str(t) for t in (full if len(full) <= 6 else [*full[:3], "...", steps]))
    (T,) = a.check(key, "i", (None,), implied)
    if T > len(full):
        raise a.error(f"its member {key!r} has {T} steps, more than the {len(full)} of the "
                      f"schedule [{shown}] of {implied}")
    if not np.array_equal(a.array(key), full[:T]):
        raise a.error(f"its member {key!r} is not the schedule [{shown}] of {implied} (nor "
                      "the start of it)")
    return full[:T]


def _check_stop(a: _Archive, c: Config, steps: np.ndarray, test_steps: np.ndarray) -> None:
    """Both schedules must stop at one step: the records of the steps up to some t."""
    nexts = []
    for got, every in ((steps, c.record_every), (test_steps, c.test_every)):
        full = schedule(c.steps, every)
        nexts.append(full[len(got)] if len(got) < len(full) else c.steps + 1)
    if max(steps[-1], test_steps[-1]) >= min(nexts):
        raise a.error(f"its steps (up to {steps[-1]}) and test steps (up to {test_steps[-1]}) "
                      "do not stop at one step")


def _configs_2(a: _Archive) -> tuple:
    """(configs, batched, vary, the members read) of a file of the current format."""
    listed = a.json("configs")
    if not isinstance(listed, list) or not listed:
        raise a.error("its member 'configs' is not a non-empty JSON list of configs")
    configs = tuple(_config(a, x, f"config {r}") for r, x in enumerate(listed))
    a.check("batched", "b", ())
    batched = bool(a.array("batched"))
    if not batched and len(configs) != 1:
        raise a.error(f"it holds {len(configs)} configs but is not a batch")
    vary = a.json("vary")
    names = {f.name for f in fields(Config)}
    if not (isinstance(vary, list) and all(isinstance(k, str) and k in names for k in vary)
            and len(set(vary)) == len(vary)):
        raise a.error(f"its member 'vary' is not a list of distinct Config fields: {vary!r}")
    return configs, batched, tuple(vary), {"format", "configs", "batched", "vary"}


def _configs_1(a: _Archive) -> tuple:
    """(configs, batched, vary, the members read) of a file of the first format: one config,
    the seeds and the varied values apart."""
    config = _config(a, a.json("config"), "member 'config'")
    if "seeds" not in a.infos:
        return (config,), False, (), {"format", "config"}
    (R,) = a.check("seeds", "i", (None,))
    seeds = a.array("seeds")
    varied = {}
    for key in sorted(a.infos):
        if key.startswith("varied."):
            a.check(key, "f", (R,))
            varied[key[len("varied."):]] = a.array(key)

    def build():
        return tuple(config.replace(seed=int(seed), **{k: float(v[r]) for k, v in varied.items()})
                     for r, seed in enumerate(seeds))

    configs = a.guard("its seeds and varied values do not make valid configs", build)
    return configs, True, tuple(varied), {"format", "config", "seeds"} | {
        f"varied.{k}" for k in varied}


def _config(a: _Archive, data, where: str) -> Config:
    """A Config from its stored dict, which must give every field and no other."""
    if not isinstance(data, dict):
        raise a.error(f"its {where} is not a JSON object")
    names = [f.name for f in fields(Config)]
    data = {**_SYNTHETIC, **_NO_DECAY, **data}  # saved before real data: the synthetic data
    missing, unknown = [k for k in names if k not in data], sorted(set(data) - set(names))
    if missing or unknown:
        raise a.error(f"its {where} " + " and ".join(
            t for t in (missing and f"lacks the field(s) {missing}",
                        unknown and f"has unknown field(s) {unknown}") if t))
    try:
        return Config(**data)
    except (TypeError, ValueError) as exc:
        hint = ("; an optimizer registered in the process that saved it must be registered "
                "(signsim.optim.register) before loading" if "'optimizer'" in str(exc) else "")
        raise a.error(f"its {where} is not a valid Config: {exc}{hint}") from None


def _params_members(a: _Archive, p: str, c: Config, lead: tuple, implied: str,
                    first_format: bool) -> dict:
    """The members of weights group ``p``, by its stored kind."""
    if f"{p}.kind" not in a.infos:
        return {f"{p}.kind": ("U", ())}
    kind = a.text(f"{p}.kind", 16)
    if kind == "dense" and not lead:
        return {f"{p}.kind": ("U", ()), f"{p}.W_Q": ("f", (c.m_k, c.d)),
                f"{p}.W_K": ("f", (c.m_k, c.d)), f"{p}.W_V": ("f", (2, c.m_v, c.d))}
    if kind != "sparse":
        raise a.error(f"its member '{p}.kind' is {kind!r}, not " + (
            "'sparse' (a batch holds sparse weights)" if lead else "'sparse' or 'dense'"))
    u = min(c.d, 1 + c.n * c.s)
    if f"{p}.coords" in a.infos:
        u = a.check(f"{p}.coords", "i", lead + (None,), implied)[-1]
        if u > min(c.d, 1 + c.n * c.s):
            raise a.error(f"its member '{p}.coords' has {u} columns, more than the "
                          f"min(d, 1 + n s) = {min(c.d, 1 + c.n * c.s)} of {implied}")
    sigma_0 = lead
    if first_format and lead and f"{p}.sigma_0" in a.infos and a.header(f"{p}.sigma_0")[0] == ():
        sigma_0 = ()  # the first format kept one sigma_0 for a batch
    scale = {f"{p}.init_scale": ("f", lead)} if f"{p}.init_scale" in a.infos else {}
    return {f"{p}.kind": ("U", ()), f"{p}.coords": ("i", lead + (u,)),
            f"{p}.W_Q_active": ("f", lead + (c.m_k, u)),
            f"{p}.W_K_active": ("f", lead + (c.m_k, u)),
            f"{p}.W_V_active": ("f", lead + (2, c.m_v, u)), f"{p}.keys": ("u", lead),
            f"{p}.d": ("i", ()), f"{p}.sigma_0": ("f", sigma_0), **scale}


def _values(a: _Archive, configs: tuple, batched: bool, vary: tuple, history: list,
            steps: dict) -> dict:
    """Read the checked members one at a time, check their values, build the Result's."""
    out = {"configs": configs, "batched": batched, "vary": vary, **steps}
    out["history"] = History({k[len("history."):]: a.array(k) for k in history},
                             batched=batched)
    for p in ("params", "init_params"):
        out[p] = _params(a, p, configs, batched)
    for D in ("dataset", "test_dataset"):
        out[D] = _dataset(a, D, configs, batched)
    return out


def _scalar(a: _Archive, key: str, want, what: str):
    value = a.array(key).item()
    if value != want:
        raise a.error(f"its member {key!r} is {value!r}, but {what} is {want!r}")
    return value


def _params(a: _Archive, p: str, configs: tuple, batched: bool):
    c = configs[0]
    if a.text(f"{p}.kind") == "dense":
        return Params(*(a.array(f"{p}.{k}") for k in ("W_Q", "W_K", "W_V")))
    d = _scalar(a, f"{p}.d", c.d, "the stored config's d")
    coords = a.array(f"{p}.coords")
    rows = np.atleast_2d(coords)
    pad, ok = rows < 0, (rows >= -1) & (rows < d)
    ok[:, 1:] &= ~(pad[:, :-1] & ~pad[:, 1:])  # padding (-1) last
    ok[:, 1:] &= pad[:, 1:] | (rows[:, 1:] > rows[:, :-1])  # then strictly increasing
    if not ok.all():
        raise a.error(f"its member '{p}.coords' is not sorted coordinates in [0, {d}) "
                      "followed by -1 padding")
    sigma_0 = a.array(f"{p}.sigma_0")
    if batched and sigma_0.ndim == 0:  # the first format: one sigma_0 for the batch
        sigma_0 = np.full(len(configs), sigma_0.item())
    want = np.array([x.sigma_0 for x in configs]) if batched else np.array(c.sigma_0)
    if not np.array_equal(sigma_0, want):
        raise a.error(f"its member '{p}.sigma_0' is {sigma_0.tolist()}, but the stored "
                      f"config(s) give sigma_0 = {want.tolist()}")
    scale = a.array(f"{p}.init_scale") if f"{p}.init_scale" in a.infos else np.array(1.0)
    if not np.all((scale > 0) & (scale <= 1)):  # (1 - lr wd)^t (weight decay, E22b)
        raise a.error(f"its member '{p}.init_scale' is not in (0, 1]: {scale.tolist()}")
    return SparseParams(coords=coords, W_Q_active=a.array(f"{p}.W_Q_active"),
                        W_K_active=a.array(f"{p}.W_K_active"),
                        W_V_active=a.array(f"{p}.W_V_active"), keys=a.array(f"{p}.keys"), d=d,
                        sigma_0=sigma_0 if batched else float(sigma_0),
                        init_scale=scale if batched and scale.ndim else float(scale))


def _dataset(a: _Archive, D: str, configs: tuple, batched: bool):
    c = configs[0]
    R = _scalar(a, f"{D}.replicas", len(configs) if batched else -1,
                "the number of replicas (-1 for a single run)")
    d = _scalar(a, f"{D}.d", c.d, "the stored config's d")
    mu_norm = _scalar(a, f"{D}.mu_norm", c.mu_norm, "the stored config's mu_norm")
    dense = dataset_class(c).storage == "dense"
    got = {k: a.array(f"{D}.{k}") for k in (DENSE_DATA_FIELDS if dense else DATA_FIELDS)}
    checks = [("y", np.isin(got["y"], (-1.0, 1.0)), "labels in {-1, +1}"),
              ("signal_position", np.isin(got["signal_position"], (0, 1)),
               "token positions in {0, 1}")]
    if dense:
        norms = np.linalg.norm(got["signal"], axis=-1)
        checks += [("signal", (np.abs(norms - mu_norm) <= 1e-12 * max(mu_norm, 1.0))
                    | (norms == 0), f"signal tokens of norm mu_norm = {mu_norm!r} (or 0)"),
                   ("noise", np.isfinite(got["noise"]), "finite noise tokens"),
                   ("image", got["image"] >= 0, "image rows >= 0")]
    else:
        checks.append(("noise_index", (got["noise_index"] >= 1) & (got["noise_index"] < d),
                       f"coordinates in [1, {d})"))
    for k, ok, text in checks:
        if not ok.all():
            raise a.error(f"its member '{D}.{k}' does not hold {text}")
    if dense:
        items = [TokenDataset(**{k: v[r] for k, v in got.items()}, mu_norm=mu_norm)
                 for r in range(max(R, 1))]
    else:
        items = [Dataset(**{k: v[r] for k, v in got.items()}, d=d, mu_norm=mu_norm)
                 for r in range(max(R, 1))]
    return items if batched else items[0]
