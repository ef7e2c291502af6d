"""Result files: exact round trips, atomic writes with ordinary permissions, and ``load``
refusing every damaged or forged file with one SignsimFileError (forged files made here)."""

import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import tracemalloc
import warnings
import zipfile
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

import signsim
from signsim import SignsimFileError
from signsim.files import DATA_FIELDS
from signsim.tracker import History

SMALL = dict(n=5, d=60, s=4, sigma_p=2.0, m_k=3, m_v=2, sigma_0=0.05, steps=12, n_test=7,
             test_every=5, record_every=1, lr=1e-2)
RUNS = {  # name -> run arguments
    "single": dict(SMALL),
    "batch": dict(SMALL, seeds=[3, 4]),
    "summary": dict({k: v for k, v in SMALL.items() if k != "lr"}, record="summary",
                    vary={"lr": [1e-2, 2e-2]}),
    "some": dict(SMALL, record=["margin", "test_error"], record_every=5),
    "dense": dict(SMALL, kernel="dense"),
}
_cache = {}


def result(name):
    if name not in _cache:
        _cache[name] = signsim.run(**RUNS[name])
    return _cache[name]


def members(path) -> dict:
    """name (without .npy) -> raw .npy bytes of a saved file."""
    with zipfile.ZipFile(path) as z:
        return {i.filename[:-4]: z.read(i) for i in z.infolist()}


def write_zip(path, items, compression=zipfile.ZIP_STORED):
    """A zip of ``items`` ((name, bytes or ndarray) pairs), names taken as given."""
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w", compression) as z:
        warnings.simplefilter("ignore")  # a duplicate name, on purpose
        for name, data in items:
            z.writestr(name, npy(data) if isinstance(data, np.ndarray) else data)
    return path


def forge(tmp_path, base, change=(), drop=(), name="forged.npz"):
    """The members of the saved result ``base``, some replaced (``change``), some dropped."""
    items = members(saved(tmp_path, base))
    items.update(dict(change))
    return write_zip(tmp_path / name, [(k + ".npy", v) for k, v in items.items() if k not in drop])


def saved(tmp_path, base):
    path = tmp_path / f"{base}.npz"
    if not path.exists():
        result(base).save(path)
    return path


def npy(array, allow_pickle=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def header(shape, descr="<f8", version=(1, 0)) -> bytes:
    """A .npy header alone (no data) claiming ``shape`` of ``descr``."""
    buf = io.BytesIO()
    d = {"descr": descr, "fortran_order": False, "shape": shape}
    (np.lib.format.write_array_header_1_0 if version == (1, 0)
     else np.lib.format.write_array_header_2_0)(buf, d)
    return buf.getvalue()


def configs_json(tmp_path, base, edit):
    listed = json.loads(str(np.load(saved(tmp_path, base))["configs"]))
    for c in listed:
        edit(c)
    return np.array(json.dumps(listed))


def refused(path, *texts):
    """load(path) raises SignsimFileError naming the file and each of ``texts``."""
    with pytest.raises(SignsimFileError) as info:
        signsim.load(path)
    message = str(info.value)
    assert str(path) in message and "allow_pickle" not in message, message
    for text in texts:
        assert text in message, message
    return message


def assert_same(back, r):
    assert back.configs == r.configs and back.batched == r.batched and back.vary == r.vary
    assert_array_equal(back.steps, r.steps)
    assert_array_equal(back.test_steps, r.test_steps)
    assert list(back.history) == list(r.history)
    for name in r.history:
        assert back.history[name].dtype == np.float64
        assert_array_equal(back.history[name], r.history[name])
    assert type(back.params) is type(r.params)
    for p, q in ((back.params, r.params), (back.init_params, r.init_params)):
        for a, b in zip(p.to_dense(), q.to_dense()):
            assert_array_equal(a, b)
    pairs = [(back.dataset, r.dataset), (back.test_dataset, r.test_dataset)]
    if r.batched:
        pairs = [(x, y) for a, b in pairs for x, y in zip(a, b, strict=True)]
    for x, y in pairs:
        for k in DATA_FIELDS:
            assert_array_equal(getattr(x, k), getattr(y, k))
        assert (x.d, x.mu_norm) == (y.d, y.mu_norm)


# ------------------------------------------------------------ round trips


@pytest.mark.parametrize("name", list(RUNS))
def test_round_trip_is_exact(tmp_path, name):
    r = result(name)
    back = signsim.load(r.save(tmp_path / "r"))
    assert_same(back, r)
    if r.batched:
        assert_same(back.replica(1), r.replica(1))


def first_format(tmp_path, base, scalar_sigma_0=False):
    """A file of the first format (one config, seeds and varied apart) from ``base``."""
    r = result(base)
    items = members(saved(tmp_path, base))
    for k in ("configs", "batched", "vary"):
        del items[k]
    items["format"] = npy(np.array("signsim-result-1"))
    items["config"] = npy(np.array(r.config.to_json()))
    if r.batched:
        items["seeds"] = npy(np.array(r.seeds, dtype=np.int64))
        for k, v in r.varied.items():
            items[f"varied.{k}"] = npy(np.asarray(v, dtype=np.float64))
        if scalar_sigma_0:
            for p in ("params", "init_params"):
                items[f"{p}.sigma_0"] = npy(np.array(r.config.sigma_0))
    return write_zip(tmp_path / "old.npz", [(k + ".npy", v) for k, v in items.items()])


@pytest.mark.parametrize("base,scalar", [("single", False), ("dense", False),
                                         ("summary", False), ("batch", True)])
def test_files_of_the_first_format_still_load(tmp_path, base, scalar):
    back = signsim.load(first_format(tmp_path, base, scalar))
    assert_same(back, result(base))
    if back.batched:  # one sigma_0 for the batch is given to every replica
        assert back.replica(1).params.to_dense().W_Q.shape == (3, 60)


def test_a_run_stopped_early_round_trips(tmp_path):
    r = result("single")  # steps 0..12, test steps 0, 5, 10, 12: stopped after step 6
    history = History({k: v[:7] if k not in ("test_loss", "test_error") else v[:2]
                       for k, v in r.history.items()})
    part = replace(r, steps=r.steps[:7], test_steps=r.test_steps[:2], history=history)
    assert_same(signsim.load(part.save(tmp_path / "part")), part)
    bad = replace(part, test_steps=r.test_steps[:3], history=History(
        {**{k: history[k] for k in history}, "test_loss": r.history["test_loss"][:3]}))
    refused(bad.save(tmp_path / "bad"), "do not stop at one step")


# ------------------------------------------------------------ writing


def test_saved_file_has_the_permissions_of_an_ordinary_file(tmp_path):
    old = os.umask(0o022)
    try:
        path = result("single").save(tmp_path / "a")
        os.umask(0o077)
        private = result("single").save(tmp_path / "b")
    finally:
        os.umask(old)
    assert (os.stat(path).st_mode & 0o777, os.stat(private).st_mode & 0o777) == (0o644, 0o600)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_stale_temp_of_a_dead_writer_is_removed_by_the_next_save(tmp_path):
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname()) or "host"
    stale = tmp_path / f".signsim-run.npz.{host}.{_dead_pid()}.0badc0de.tmp"
    live = tmp_path / f".signsim-run.npz.{host}.{os.getppid()}.0badc0de.tmp"
    other = tmp_path / f".signsim-other.npz.{host}.{_dead_pid()}.0badc0de.tmp"
    for p in (stale, live, other):
        p.write_bytes(b"half a file")
    result("single").save(tmp_path / "run")
    assert sorted(os.listdir(tmp_path)) == sorted(["run.npz", live.name, other.name])


def test_the_temp_file_is_named_beside_the_target_and_removed_on_any_exception(
        tmp_path, monkeypatch):
    seen = []

    def failing(fh, **arrays):
        seen.extend(os.listdir(tmp_path))
        fh.write(b"PK partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", failing)
    with pytest.raises(KeyboardInterrupt):
        result("single").save(tmp_path / "run")
    assert re.fullmatch(r"\.signsim-run\.npz\.[A-Za-z0-9-]+\.\d+\.[0-9a-f]{8}\.tmp", seen[0])
    assert os.listdir(tmp_path) == []


def test_a_file_that_appears_while_saving_is_not_replaced(tmp_path, monkeypatch):
    target, real = tmp_path / "run.npz", np.savez

    def racing(fh, **arrays):
        target.write_bytes(b"someone else's")
        real(fh, **arrays)

    monkeypatch.setattr(np, "savez", racing)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        result("single").save(target)
    assert target.read_bytes() == b"someone else's" and os.listdir(tmp_path) == ["run.npz"]


# ------------------------------------------------------------ refusals


def test_truncated_files_are_refused(tmp_path):
    data = saved(tmp_path, "single").read_bytes()
    for k, cut in enumerate([0, 10, len(data) // 2, len(data) - 30, len(data) - 1]):
        path = tmp_path / f"cut{k}.npz"
        path.write_bytes(data[:cut])
        refused(path, "not a zip archive")
    spliced = tmp_path / "spliced.npz"  # bytes cut out of the middle: the directory is wrong
    spliced.write_bytes(data[:len(data) // 2] + data[len(data) // 2 + 100:])
    refused(spliced)


def test_random_bytes_and_other_zips_are_refused(tmp_path):
    (tmp_path / "noise.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    refused(tmp_path / "noise.npz", "not a zip archive")
    refused(write_zip(tmp_path / "text.npz", [("notes.txt", b"hello")]),
            "'notes.txt' is not a .npy array")
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    refused(tmp_path / "other.npz", "not a signsim result", "no 'format' member")


def test_a_wrong_format_string_is_refused(tmp_path):
    refused(forge(tmp_path, "single", {"format": np.array("signsim-result-9")}),
            "not a signsim result", "'signsim-result-9'")


@pytest.mark.parametrize("member", ["params.W_Q_active", "dataset.y", "test_dataset.d",
                                    "init_params.kind", "steps", "batched"])
def test_a_missing_member_is_refused(tmp_path, member):
    refused(forge(tmp_path, "single", drop=[member]), repr(member))


def test_a_history_name_may_be_absent_but_not_unknown(tmp_path):
    back = signsim.load(forge(tmp_path, "single", drop=["history.margin"]))
    assert "margin" not in back.history and "attention" in back.history
    refused(forge(tmp_path, "single", {"history.margins": np.zeros((13, 5))}),
            "unknown member(s) ['history.margins']")
    refused(forge(tmp_path, "single", {"extra": np.zeros(3)}), "unknown member(s) ['extra']")


@pytest.mark.parametrize("member,array,text", [
    ("history.margin", np.zeros((13, 5), np.float32), "dtype float32, not float64"),
    ("dataset.noise_index", np.ones((1, 5, 4)), "dtype float64, not int64"),
    ("params.keys", np.array(7, np.int64), "dtype int64, not uint64"),
    ("batched", np.array(0), "dtype int64, not bool"),
    ("configs", np.array(1.0), "dtype float64, not str"),
])
def test_a_wrong_dtype_is_refused(tmp_path, member, array, text):
    refused(forge(tmp_path, "single", {member: array}), repr(member), text)


@pytest.mark.parametrize("base,member,shape", [
    ("single", "history.margin", (13, 6)), ("single", "history.test_loss", (13,)),
    ("batch", "history.train_loss", (13,)), ("single", "dataset.noise_value", (1, 5, 5)),
    ("single", "params.W_V_active", (2, 3, 21)), ("dense", "params.W_Q", (3, 61)),
])
def test_a_wrong_shape_is_refused(tmp_path, base, member, shape):
    refused(forge(tmp_path, base, {member: np.zeros(shape)}), repr(member), "shape")


@pytest.mark.parametrize("kernel,text", [("fast", "'params.coords' has 50 columns"),
                                         ("dense", "'history.query_noise' has shape")])
def test_a_config_that_contradicts_the_arrays_is_refused(tmp_path, kernel, text):
    big = signsim.run(**dict(SMALL, n=20, kernel=kernel))
    items = members(big.save(tmp_path / "n20.npz"))
    items["configs"] = npy(np.array(json.dumps([big.config.replace(n=7).to_dict()])))
    refused(write_zip(tmp_path / "n7.npz", [(k + ".npy", v) for k, v in items.items()]),
            text, "the stored config (n=7, d=60")


def test_a_config_that_contradicts_a_value_is_refused(tmp_path):
    for field, value, text in (("d", 61, "d is 61"), ("steps", 11, "'steps'"),
                               ("mu_norm", 2.0, "mu_norm"), ("sigma_0", 0.5, "sigma_0")):
        configs = configs_json(tmp_path, "single", lambda c: c.update({field: value}))
        refused(forge(tmp_path, "single", {"configs": configs}, name=f"{field}.npz"), text)


@pytest.mark.parametrize("edit,text", [
    (lambda c: c.pop("sigma_p"), "lacks the field(s) ['sigma_p']"),
    (lambda c: c.update(colour="red"), "unknown field(s) ['colour']"),
    (lambda c: c.update(n=-1), "not a valid Config"),
    (lambda c: c.update(optimizer=None), "not a valid Config"),
])
def test_a_config_missing_a_field_or_invalid_is_refused(tmp_path, edit, text):
    refused(forge(tmp_path, "single", {"configs": configs_json(tmp_path, "single", edit)}),
            "config 0", text)


@pytest.mark.parametrize("text,problem", [
    ("{not json", "not valid JSON"), ("[]", "non-empty JSON list"), ("[1]", "not a JSON object"),
    ("[" * 100_000, "not valid JSON"),
])
def test_configs_that_are_not_a_list_of_configs_are_refused(tmp_path, text, problem):
    refused(forge(tmp_path, "single", {"configs": np.array(text)}), problem)


def test_a_batch_and_its_configs_must_agree(tmp_path):
    two = configs_json(tmp_path, "batch", lambda c: None)
    refused(forge(tmp_path, "single", {"configs": two}), "2 configs but is not a batch")
    listed = json.loads(str(two))
    listed[1]["m_k"] = 4
    refused(forge(tmp_path, "batch", {"configs": np.array(json.dumps(listed))}),
            "replicas disagree on m_k")
    refused(forge(tmp_path, "batch", {"dataset.replicas": np.array(3)}), "'dataset.replicas'")


@pytest.mark.parametrize("member", ["history.margin", "format", "params.kind"])
def test_an_object_array_is_refused_as_a_pickle(tmp_path, member):
    forged = npy(np.array([None, {"x": 1}], dtype=object), allow_pickle=True)
    refused(forge(tmp_path, "single", {member: forged}), repr(member),
            "holds a Python object (pickle), which signsim never writes or loads")


@pytest.mark.parametrize("shape", [(10**11, 10**5), (402_653_184,), (13, 10**10)])
def test_a_forged_header_claiming_a_huge_shape_allocates_nothing(tmp_path, shape):
    path = forge(tmp_path, "single", {"history.margin": header(shape) + b"\0" * 800})
    tracemalloc.start()
    try:
        refused(path, "'history.margin'", "claims shape")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20


def test_a_header_whose_size_matches_the_member_but_not_the_config_is_refused(tmp_path):
    refused(forge(tmp_path, "single", {"history.margin": np.zeros((13, 5000))}),
            "'history.margin'", "(13, 5)")
    wide = {"params.coords": np.arange(30), "params.W_Q_active": np.zeros((3, 30))}
    refused(forge(tmp_path, "single", wide), "more than the min(d, 1 + n s) = 21")


@pytest.mark.parametrize("forged,text", [
    (header((13, 5), version=(2, 0)) + b"\0" * 520, None),  # version 2.0 is read
    (b"\x93NUMPY\x03\x00" + header((13, 5))[8:] + b"\0" * 520, ".npy version 3.0"),
    (b"\x93NUMPY\x01\x00\xff\xff" + b" " * 65535, "header claims 65535 bytes"),
    (b"\x93NUMPY\x01\x00", "damaged or not a .npy array"),
    (b"not an npy file at all", "damaged or not a .npy array"),
    (header((13, -5)), "negative shape"),
    (header((13, 5), descr=[("a", "<f8")]) + b"\0" * 520, "dtype"),
])
def test_damaged_npy_headers_are_refused(tmp_path, forged, text):
    path = forge(tmp_path, "single", {"history.margin": forged})
    if text is None:
        assert signsim.load(path).history["margin"].shape == (13, 5)
    else:
        refused(path, "'history.margin'", text)


def test_damaged_and_compressed_members_are_refused(tmp_path):
    data = bytearray(saved(tmp_path, "single").read_bytes())
    at = data.index(npy(result("single").history["margin"])) + 200
    data[at] ^= 0xFF
    (tmp_path / "flipped.npz").write_bytes(bytes(data))
    refused(tmp_path / "flipped.npz", "'history.margin'", "CRC")
    items = members(saved(tmp_path, "single"))
    refused(write_zip(tmp_path / "deflated.npz", [(k + ".npy", v) for k, v in items.items()],
                      zipfile.ZIP_DEFLATED), "compressed")
    refused(write_zip(tmp_path / "twice.npz", [("format.npy", items["format"])] * 2), "twice")


@pytest.mark.parametrize("member,array,text", [
    ("dataset.noise_index", np.full((1, 5, 4), 60), "coordinates in [1, 60)"),
    ("dataset.signal_position", np.full((1, 5), 2), "token positions"),
    ("test_dataset.y", np.zeros((1, 7)), "labels"),
    ("params.coords", np.arange(21)[::-1].copy(), "sorted coordinates"),
    ("init_params.coords", np.r_[-np.ones(1, int), np.arange(20)], "sorted coordinates"),
    ("params.sigma_0", np.array(0.5), "'params.sigma_0' is 0.5"),
    ("params.d", np.array(61), "'params.d' is 61"),
    ("steps", np.arange(13)[::-1].copy(), "not the schedule"),
])
def test_values_that_contradict_the_configs_are_refused(tmp_path, member, array, text):
    refused(forge(tmp_path, "single", {member: array}), repr(member), text)


def test_a_missing_file_stays_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        signsim.load(tmp_path / "nowhere.npz")
    assert issubclass(SignsimFileError, ValueError)


# ------------------------------------------------------------ any input


def _npy_like():
    """Bytes that often look like a .npy member: a valid header, then some data."""
    dtypes = st.sampled_from(["<f8", ">f8", "<f4", "<i8", "<u8", "|b1", "<U5", "|O", "<c16"])
    shapes = st.lists(st.sampled_from([0, 1, 2, 5, 13, 21, 10**9]), max_size=4).map(tuple)
    return st.builds(lambda s, d, tail: header(s, d) + tail, shapes, dtypes,
                     st.binary(max_size=700))


TEXTS = ["signsim-result-2", "signsim-result-1", "sparse", "dense", "[]", '["lr"]', "[{}]",
         '["seed"]', "{}"]


@st.composite
def _similar(draw, original: bytes):
    """A member of ``original``'s dtype and (often) shape, with other values, often out of
    range (coordinates, labels, NaN)."""
    try:
        a = np.load(io.BytesIO(original))
    except Exception:  # no longer a valid member (replaced before)
        return draw(_contents())
    shape = list(a.shape)
    if shape and draw(st.booleans()):
        at = draw(st.integers(0, len(shape) - 1))
        shape[at] = max(0, shape[at] + draw(st.sampled_from([-1, 1])))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    pool = {"f": [-1.0, 1.0, 0.0, 0.05, 2.0, np.nan, np.inf], "i": [-2, -1, 0, 1, 2, 5, 59, 60],
            "u": [0, 1, 2**64 - 1], "b": [False, True]}.get(a.dtype.kind)
    if a.dtype.kind == "U" or pool is None or a.dtype.itemsize != 8 and a.dtype.kind != "b":
        return npy(np.array(draw(st.sampled_from(TEXTS))))
    return npy(rng.choice(np.array(pool, dtype=a.dtype), size=shape))


def _contents():
    return st.one_of(st.binary(max_size=300), _npy_like(),
                     st.sampled_from([npy(np.array(s)) for s in TEXTS]
                                     + [npy(np.zeros((13, 5))), npy(np.array(True))]))


def _names():
    known = ["format", "configs", "batched", "vary", "steps", "history.margin", "params.kind",
             "params.coords", "dataset.y", "varied.lr", "seeds", "config", "history.x"]
    other = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
    return st.one_of(st.sampled_from(known), other).map(lambda s: s + ".npy")


@st.composite
def archives(draw):
    """Random bytes; a random zip; or a real result (either format) with members dropped,
    replaced (by random bytes, forged headers or other values), added, or bytes flipped."""
    kind = draw(st.sampled_from(["bytes", "zip", "mutant", "mutant", "mutant"]))
    if kind == "bytes":
        return draw(st.binary(max_size=3000))
    if kind == "zip":
        items = draw(st.lists(st.tuples(_names(), _contents()), max_size=8))
    else:
        items = [(k + ".npy", v) for k, v in BASES[draw(st.sampled_from(sorted(BASES)))].items()]
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(items) - 1))
            op = draw(st.sampled_from(["drop", "replace", "similar", "similar", "add"]))
            if op == "drop" and len(items) > 1:
                items.pop(at)
            elif op == "replace":
                items[at] = (items[at][0], draw(_contents()))
            elif op == "similar":
                items[at] = (items[at][0], draw(_similar(items[at][1])))
            elif op == "add":
                items.append((draw(_names()), draw(_contents())))
    buf = io.BytesIO()
    write_zip(buf, items, draw(st.sampled_from([zipfile.ZIP_STORED] * 9 + [zipfile.ZIP_DEFLATED])))
    data = bytearray(buf.getvalue())
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2])) if kind == "mutant" else 0):
        data[draw(st.integers(0, len(data) - 1))] ^= draw(st.integers(1, 255))
    return bytes(data)


BASES = {}


@pytest.fixture(scope="module", autouse=True)
def _bases(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bases")
    for base in ("single", "batch", "dense"):
        BASES[base] = members(result(base).save(folder / base))
    BASES["old"] = members(first_format(folder, "batch", scalar_sigma_0=True))


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(archives())
def test_load_returns_a_result_or_raises_signsim_file_error_whatever_the_bytes(data):
    """Property: for any bytes in the file (random bytes, random zip archives of random
    members, real results damaged at random), ``load`` either returns a Result whose weights
    and data can be used, or raises SignsimFileError naming the file; nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "any.npz")
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            r = signsim.load(path)
        except SignsimFileError as exc:
            assert path in str(exc) and "allow_pickle" not in str(exc)
            return
    one = r.replica(0) if r.batched else r
    assert one.params.to_dense().W_V.shape == (2, one.config.m_v, one.config.d)
    assert one.dataset.X.shape == (one.config.n, one.config.d, 2)
    for name in r.history:
        assert r.history[name].dtype == np.float64
