"""Break the simulator on purpose and record which tests catch each break.

Each mutant is one textual change to a copy of signsim/ (the repository is not touched); the
whole test suite runs against the copy and the failing tests are listed. A mutant that no
test catches is reported as SURVIVED, and the script exits 1.

    python scripts/mutants.py                 # all mutants, prints a Markdown table
    python scripts/mutants.py sign0 adam-bias # some of them
    SIGNSIM_MUTANT_TESTS=tests/test_sweeps.py python scripts/mutants.py sweep-batch-n
                                              # against some test files only (a quick
                                              # check; the table in docs/lemmas.md is the
                                              # whole suite's)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name: (what it breaks, file, exact text, replacement)
STEP, LAYOUTS, TESTSET = ("signsim/kernels/fast/step.py", "signsim/kernels/fast/layouts.py",
                          "signsim/kernels/fast/testset.py")
RECORDS, SUPPORT = "signsim/kernels/fast/records.py", "signsim/kernels/fast/support.py"

EXACT = "signsim/kernels/fast/exact.py"

MUTANTS = {
    # --- task C (issue 15): the optimizers between SignGD and Adam, weight decay, compare()
    "signum-momentum-of-signs": ("Signum: a momentum of signs instead of the sign of a "
                                 "momentum", "signsim/optim.py",
                                 "mu = _map(lambda g, m: b * m + c * g, grads, state.mu)",
                                 "mu = _map(lambda g, m: b * m + c * np.sign(g), grads, state.mu)"),
    "decay-after-update": ("dense reference: weight decay applied after the update (to W^(t-1) "
                           "+ update, not W^(t-1))", "signsim/kernels/dense.py",
                           "apply_updates(self._decayed(state.params), updates)",
                           "self._decayed(apply_updates(state.params, updates))"),
    "decay-frozen-test-logits": ("fast kernel: the frozen test logits z12, z21 not scaled by "
                                 "c_t under weight decay", TESTSET,
                                 "        z12 *= c\n        z21 *= c\n", "        pass\n"),
    "compare-unweighted-agreement": ("compare: every record entry weighs 1 in the update-sign "
                                     "agreement (not s coordinates per (row, sample))",
                                     "signsim/compare.py", 's if per == "s" else 1, float',
                                     "1, float"),
    # --- task B (issue 14): real data (signsim/datasets, data.TokenDataset, kernels.check_data)
    "realdata-test-overlaps-train": ("real data: the test images taken from the start of each "
                                     "class's permutation, i.e. the training images",
                                     "signsim/datasets/task.py",
                                     "test_rows[len(test_rows) - want[1]:]", "test_rows[:want[1]]"),
    "realdata-idx-size-unchecked": ("IDX reader: the data size not checked against the header "
                                    "(truncated or trailing files read or failed unnamed)",
                                    "signsim/datasets/idx.py", "    if held != want:\n",
                                    "    if False:\n"),
    "realdata-mu-unsigned": ("real data: the signal records project on the mean signal token, "
                             "not the label-signed mean", "signsim/data.py",
                             "return self.y @ self.signal / self.n",
                             "return self.signal.mean(axis=0)"),
    "realdata-fast-kernel-allowed": ("kernels: the fast kernel not refused on data that does not "
                                     "declare what it assumes", "signsim/kernels/__init__.py",
                                     'if config.kernel == "fast" and lacking:',
                                     'if config.kernel == "fast" and not lacking and False:'),
    # --- task A (issue 11, items 5 and speed): float32 arithmetic, the precision figure,
    # the exact kernel's scales computed on demand
    "precision-share-key": ("precision figure: the share of noise with its neuron's "
                            "query-signal sign counted on key noise", "signsim/plotting.py",
                            'same = np.sign(h["query_noise"]) == np.sign(h["query_signal"])',
                            'same = np.sign(h["key_noise"]) == np.sign(h["query_signal"])'),
    "float32-on-fast": ("Config: arithmetic='float32' accepted with kernel='fast' (which "
                        "runs float64 instead)", "signsim/config.py",
                        "if value in self.only and resolved[self.field] != self.value:",
                        "if False:"),
    "exact-noise-scale-L1": ("fast kernel, exact arithmetic: W_Q's noise-token scale log|g1| "
                             "instead of log|g2|", EXACT,
                             "    L[..., :m_k] = x.L[1][..., None]",
                             "    L[..., :m_k] = x.L[0][..., None]"),
    # --- task D (issue 13 item 6): the moment layout, signsim/kernels/fast/moments.py
    "moments-shared-frozen": ("moment layout: the copies of a shared coordinate not written "
                              "from the rule's own update (they stay put)",
                              "signsim/kernels/fast/moments.py", "        if r.size:\n",
                              "        if False:\n"),
    "moments-eps-unscaled": ("moment layout: eps added to B unscaled (u = sign(x) A / (B + eps)"
                             ", not x A / (|x| B + eps))", "signsim/kernels/fast/moments.py",
                             "self.eps / np.abs(self.vals),", "self.eps + 0 * self.vals,"),
    "adam-moments-no-bias": ("Adam's moments declaration: V without its bias correction",
                             "signsim/optim.py", "np.sqrt(V / (1.0 - beta2**t))",
                             "np.sqrt(V)"),
    # --- sweeps (issue 13): signsim/sweeps
    "sweep-batch-n": ("sweep plan: runs of different n share one batch", "signsim/sweeps/plan.py",
                      'free = set(VARIABLE) | {"seed"}', 'free = set(VARIABLE) | {"seed", "n"}'),
    "sweep-resume-recomputes": ("sweep: a resume runs again what the folder already holds",
                                "signsim/sweeps/__init__.py",
                                "todo = [j for j in mine if j.key not in records and j.key not in errors]",
                                "todo = [j for j in mine if j.key not in errors]"),
    "sweep-other-sweep-accepted": ("sweep folder: a folder holding another sweep is used",
                                   "signsim/sweeps/store.py", "if found != json.loads(text):",
                                   "if False:"),
    "sweep-batch-failure-fails-all": ("sweep: a failing batch fails every run in it (no "
                                      "one-by-one retry)", "signsim/sweeps/work.py",
                                      "            parts, errors = _one_by_one(configs, keys, names)",
                                      "            parts, errors = [], {k: describe_error(exc) for k in keys}"),
    "sweep-dense-no-replica-axis": ("sweep: a dense-reference task's single-run history "
                                    "kept without its replica axis",
                                    "signsim/sweeps/work.py",
                                    "return a if result.batched else a[None]", "return a"),
    "sweep-foreign-folder": ("sweep folder: a non-empty folder without sweep.json taken over",
                             "signsim/sweeps/store.py", "        _refuse_foreign(self.root)\n",
                             ""),
    "sweep-stale-error-wins": ("sweep table: an old failure shown over a run that finished "
                               "since", "signsim/sweeps/table.py",
                               "if config is not None and key in records:",
                               "if config is not None and key in records and key not in errors:"),
    "figure-line-mean": ("data-quality and real-data figures: the mean over seeds drawn "
                         "where the median is claimed", "signsim/plotting.py",
                         "        ax.plot(x, np.median(values, axis=1), marker=",
                         "        ax.plot(x, np.mean(values, axis=1), marker="),
    "phase-mean": ("phase diagram: the mean over seeds where the median is drawn",
                   "signsim/sweeps/phase.py", "loss[j, i], spread[j, i] = np.median(lo)",
                   "loss[j, i], spread[j, i] = np.mean(lo)"),
    "exact-float-attention-fast": ("fast kernel, exact arithmetic: log attention taken from the "
                                   "float64 attention (underflows to -inf)", EXACT,
                                   "    return -np.logaddexp(0.0, at.gap)",
                                   "    return np.log(at.S)"),
    "exact-float-attention-dense": ("dense reference, exact arithmetic: log S from the float64 "
                                    "softmax (underflows to -inf)", "signsim/loggrads.py",
                                    "    log_S = log_softmax(fw.z, axis=-1)",
                                    "    log_S = np.log(fw.S)"),
    "exact-float-loss-derivative": ("fast kernel, exact arithmetic: log|l'| from the float64 l' "
                                    "(underflows once the margin passes 745)", EXACT,
                                    "    log_a = -np.logaddexp(0.0, fw.margin)\n",
                                    "    log_a = np.log(-fw.lp)\n"),
    "exact-no-guard": ("fast kernel, exact arithmetic: the scaled form trusted where it cannot "
                       "vouch for a sign (no fallback to the full log form)", EXACT,
                       "TINY = 2.0 ** -1000", "TINY = 0.0"),
    "exact-adam-v-bias": ("Adam's log form without the bias correction of v (E21)",
                          "signsim/optim.py",
                          "log_sqrt_v_hat = 0.5 * (vl - _log(1.0 - beta2**t))",
                          "log_sqrt_v_hat = 0.5 * vl"),
    "exact-rules-from-float": ("theory.exact_rule_predictions: E^Q from the float64 attention "
                               "products (the R3/R5 signs decided by underflow)", "signsim/theory.py",
                               "sEQ, lEQ = signed_add(s_q, log_s11_s12 + l_q, s_Q, log_s21_s22 + l_Q)",
                               "sEQ, lEQ = split(np.exp(log_s11_s12) * h['query_signal'][:, None]"
                               " + np.exp(log_s21_s22) * h['query_noise'])"),
    "exact-dense-patch-order": ("dense reference, exact arithmetic: a patch entry's sign dropped "
                                "(|X| instead of X)", "signsim/loggrads.py",
                                "    sign, log = split(X[i, k, l])",
                                "    sign, log = split(np.abs(X[i, k, l]))"),
    "sign0": ("SignGD with sign(0) = 1 (E20)", "signsim/optim.py",
              "-lr * np.sign(g)", "-lr * np.where(g == 0, 1.0, np.sign(g))"),
    "adam-bias": ("Adam without bias correction (E21)", "signsim/optim.py",
                  "m_hat = m / (1.0 - beta1**t)\n        denom = np.sqrt(v / (1.0 - beta2**t)) + eps",
                  "m_hat = m\n        denom = np.sqrt(v) + eps"),
    "adam-eps-inside": ("Adam with eps inside the square root (E21)", "signsim/optim.py",
                        "np.sqrt(v / (1.0 - beta2**t)) + eps", "np.sqrt(v / (1.0 - beta2**t) + eps)"),
    "gd-declared-sign": ("a linear optimizer (GD) declared homogeneous of degree 0, so the fast "
                         "kernel runs it on the sign layout", "signsim/optim.py",
                         "homogeneity=1.0, proportional_to_lr=True", "homogeneity=0.0, proportional_to_lr=True"),
    "softmax-axis-dense": ("dense reference: softmax over queries instead of keys (E10)",
                           "signsim/model.py",
                           "e = np.exp(z - z.max(axis=-1, keepdims=True))\n    return e / e.sum(axis=-1, keepdims=True)",
                           "e = np.exp(z - z.max(axis=-2, keepdims=True))\n    return e / e.sum(axis=-2, keepdims=True)"),
    "softmax-axis-fast": ("fast kernel: softmax over queries instead of keys (E10)", STEP,
                          "np.subtract(z12, z11, out=gap[0])\n    np.negative(gap[0], out=gap[1])\n"
                          "    np.subtract(z22, z21, out=gap[2])\n    np.negative(gap[2], out=gap[3])",
                          "np.subtract(z21, z11, out=gap[0])\n    np.negative(gap[0], out=gap[2])\n"
                          "    np.subtract(z22, z12, out=gap[1])\n    np.negative(gap[1], out=gap[3])"),
    "value-1/m_v-dense": ("dense reference: value gradient without 1/m_v (E19)", "signsim/grads.py",
                          "/ (n * m_v)", "/ n"),
    "value-1/m_v-fast": ("fast kernel: value gradient without 1/m_v (E19)", STEP,
                         "cv = (y * a) / -k.m_v", "cv = (y * a) / -1.0"),
    "value-head-odd": ("fast kernel: the j = -1 value row given the same gradient as j = +1 "
                       "(E19's factor j dropped)", STEP,
                       "np.negative(C[..., 2 * m_k], out=C[..., 2 * m_k + 1])",
                       "np.positive(C[..., 2 * m_k], out=C[..., 2 * m_k + 1])"),
    "no-vbar": ("dense reference: E16 without the Vbar term", "signsim/grads.py",
                'dev = np.einsum("nlb,nab->nla", fw.S, dV)', "dev = fw.V[:, None, :] + 0 * dV"),
    "key-grad-sign": ("fast kernel: key gradient on the noise token with the wrong sign (E18)",
                      STEP, "np.multiply(k.neg_y3, aEQ, out=CK)", "np.multiply(k.y3, aEQ, out=CK)"),
    "query-driver-DK": ("fast kernel: the query gradient with D^K's signal part dropped (E17)",
                        STEP, "DK -= fw.ks[:, None]  # D^K_{s,i}", "DK -= 0.0  # D^K_{s,i}"),
    "overlap-ignored": ("fast kernel: shared coordinates not summed across samples", SUPPORT,
                        "return self.count[self.slot_col.ravel()] > 1",
                        "return self.count[self.slot_col.ravel()] > 10**9"),
    "signgd-sums-as-gd": ("fast kernel, per-sample layout: a sign rule's sums weighted by xi, "
                          "not sign(xi)", LAYOUTS, "    if p == 0:\n        return np.sign(values)",
                          "    if p == 0:\n        return values.copy()"),
    "test-value-factor": ("fast kernel: test predictions with v = v(0) + Delta_+, not "
                          "+ Delta_+ - Delta_-", TESTSET,
                          "np.subtract(Z[:, 2 * m_k], Z[:, 2 * m_k + 1], out=Zc[:, 2 * m_k + 2])",
                          "np.subtract(Z[:, 2 * m_k], 0.0, out=Zc[:, 2 * m_k + 2])"),
    "test-coordinate-table": ("fast kernel: test coordinates numbered in the wrong order "
                              "(the table built by marking)", SUPPORT,
                              "position[values] = np.arange(values.size)",
                              "position[values] = np.arange(values.size)[::-1]"),
    "support-has-mu": ("data: noise support may include coordinate 1 (E3)", "signsim/data.py",
                       "idx = rng.integers(1, d, size=(count, s))",
                       "idx = rng.integers(0, d - 1, size=(count, s))"),
    "roles-swapped": ("dense reference: attention recorded with the roles swapped",
                      "signsim/kernels/dense.py",
                      "roles = np.stack([signal_position, 1 - signal_position], axis=1)",
                      "roles = np.stack([1 - signal_position, signal_position], axis=1)"),
    "sigmoid-floor": ("fast kernel: sigmoid arguments raised to -30, where 1 / (1 + e^x) is "
                      "not yet exactly 1", STEP, "SIGMOID_FLOOR = -40.0", "SIGMOID_FLOOR = -30.0"),
    "test-y-fold": ("fast kernel: test matrix rows not multiplied by the test labels", TESTSET,
                    "    M.data *= y[:, :H]", "    M.data *= 1 + 0 * y[:, :H]"),
    "train-metrics-blocks": ("fast kernel: train loss and error of a block of records taken "
                             "one record late", RECORDS,
                             "part = margin[..., start:start + rows, :]",
                             "part = np.roll(margin, 1, axis=-2)[..., start:start + rows, :]"),
    "mean-value-noise-fast": ("fast kernel: mean value with Delta_+ alone, not Delta_+ - Delta_- "
                              "(E11)", STEP,
                              "vn = k.v0n + (P[..., 2 * m_k] - P[..., 2 * m_k + 1])",
                              "vn = k.v0n + (P[..., 2 * m_k] - 0.0)"),
    "r3-mask-empty": ("theory: the R3 check mask empty (e > 1 instead of e > tiny), so the "
                      "key-noise rule is never checked", "signsim/theory.py",
                      "own & (e > tiny)", "own & (e > 1.0)"),
    "dq-sigma-mapping": ("sweep grid (the data-quality figure): sigma_p = mu_norm/(SNR s) "
                         "instead of mu_norm/(SNR sqrt(s)) (E5)", "signsim/sweeps/grid.py",
                         "config.mu_norm / (snr * math.sqrt(config.s))",
                         "config.mu_norm / (snr * config.s)"),
    "checkpoint-stale-records": ("checkpoint: the records of the checkpointed step itself "
                                 "dropped on resume, not re-recorded", "signsim/loop.py",
                                 "            if t in record_row:\n",
                                 "            if t in record_row and not (start and t == start.state.step):\n"),
    "nonfinite-unchecked": ("loop: NaN and inf in the records never looked for",
                            "signsim/loop.py", "    if bad is None:\n        return",
                            "    if bad is None or True:\n        return"),
    "test-from-train-stream": ("data: the test set drawn from the training stream (with "
                               "n_test = n, the training set again)", "signsim/data.py",
                               "sample_dataset(test_rng, config.n_test, config)",
                               "sample_dataset(streams(config.seed)[0], config.n_test, config)"),
    "noise-abs": ("data: noise values drawn as |N(0, sigma_p^2)| (E3)", "signsim/data.py",
                  "value = config.sigma_p * rng.standard_normal((count, config.s))",
                  "value = config.sigma_p * np.abs(rng.standard_normal((count, config.s)))"),
    "replica-off-by-one": ("Result.replica(r) takes the history of replica r + 1",
                           "signsim/tracker.py", "arrays = {k: v[r] for k, v in self._arrays.items()}",
                           "arrays = {k: v[(r + 1) % len(v)] for k, v in self._arrays.items()}"),
    "chunks-overlap": ("worker processes: replica chunks that overlap (one replica run twice, "
                       "the last one dropped)", "signsim/parallel.py",
                       "return [range(a, b) for a, b in zip(bounds, bounds[1:])]",
                       "return [range(max(a - 1, 0), b - (b == R)) for a, b in zip(bounds, bounds[1:])]"),
}


TESTS = os.environ.get("SIGNSIM_MUTANT_TESTS", "tests").split()


def run_mutant(name: str | None) -> list[str]:
    """The tests that fail on a copy of the package with mutant ``name`` (None: unchanged)."""
    what, rel, old, new = MUTANTS[name] if name else ("", "signsim/__init__.py", "", "")
    with tempfile.TemporaryDirectory(prefix="signsim-mutant-") as tmp:
        for part in ("signsim", "tests", "docs", "README.md", "setup.cfg"):
            src = ROOT / part
            (shutil.copytree if src.is_dir() else shutil.copy)(src, Path(tmp) / part)
        target = Path(tmp) / rel
        text = target.read_text()
        if name and text.count(old) != 1:
            raise SystemExit(f"mutant {name}: the text to change occurs {text.count(old)} "
                             f"times in {rel} (expected once); update MUTANTS")
        target.write_text(text.replace(old, new))
        env = {**os.environ, "PYTHONPATH": tmp, "MPLBACKEND": "Agg",
               "HYPOTHESIS_PROFILE": "ci"}
        check = subprocess.run([sys.executable, "-c", "import signsim; print(signsim.__file__)"],
                               cwd=tmp, env=env, capture_output=True, text=True)
        assert check.stdout.startswith(tmp), f"mutant run imports {check.stdout!r}, not the copy"
        out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                              "-rf", *TESTS], cwd=tmp, env=env, capture_output=True, text=True)
        failed = sorted({re.sub(r"\[.*", "", m) for m in
                         re.findall(r"^FAILED (tests/\S+?)(?: - |$)", out.stdout, re.M)})
        if out.returncode not in (0, 1):  # collection error, interrupted: not a verdict
            raise SystemExit(f"mutant {name}: pytest exited {out.returncode}:\n"
                             f"{out.stdout[-2000:]}{out.stderr[-2000:]}")
        if (out.returncode == 1) != bool(failed):
            raise SystemExit(f"mutant {name}: pytest exited {out.returncode} with failures "
                             f"{failed}: the output was not understood")
        return failed


def main(names: list[str]) -> int:
    broken = run_mutant(None)  # a copy that fails unchanged would "catch" every mutant
    if broken:
        raise SystemExit(f"the unchanged copy fails {broken}: fix that first")
    survived = []
    print("| break | caught by |\n|---|---|")
    for name in names or list(MUTANTS):
        failed = run_mutant(name)
        short = ", ".join(f.replace("tests/", "").replace(".py::", "::") for f in failed)
        print(f"| {MUTANTS[name][0]} (`{name}`) | {short or '**SURVIVED**'} |", flush=True)
        if not failed:
            survived.append(name)
    return 1 if survived else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
