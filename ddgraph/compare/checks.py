"""Prediction against measurement, node by node, with honest verdicts (THEORY §8)."""
from __future__ import annotations

import math

import attrs

from ddgraph.compare.regimes import in_window
from ddgraph.compare.verdicts import FitStatus, Verdict
from ddgraph.core.graph import PRIMITIVE
from ddgraph.prediction import IN_REACH, Prediction
from ddgraph.probing.fit import TOL, Fit, fit_rate, judge
from ddgraph.probing.observables import LN_RATIO_MAX, holds_kernel
from ddgraph.probing.results import Measurement
from ddgraph.probing.window import Expected, fit_window

OBSERVABLES = ("dd", "schur", "lmin")


@attrs.frozen
class Check:
    """One observable of one node: what was predicted, what was fitted, and the verdict."""

    node: str
    param: str
    factor: str  # 'A' or 'G'
    direction: int
    observable: str
    predicted: object
    fit: Fit
    verdict: str
    tol: float
    status: str  # the prediction's status (in-reach, bracket, no-rule)
    regime: str = ""  # the eps regime of the window, when the rates depend on it (THEORY §3.8)


@attrs.frozen
class Diff:
    prediction: Prediction
    measurement: Measurement
    checks: tuple[Check, ...]
    ln: tuple[dict, ...]
    streams: tuple[dict, ...]
    bands: dict = attrs.field(factory=dict)  # rule file -> its finite-t band, for the rules that widen it

    @property
    def primary(self) -> list[Check]:
        """The dead-entry checks: the ones the table shows and the exit status rests on."""
        return [c for c in self.checks if c.observable == "dd"]

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.primary if c.status == IN_REACH and c.verdict != Verdict.PASS]

    @property
    def ok(self) -> bool:
        return not self.failures and not self.measurement.moved and all(x["verdict"] == Verdict.PASS for x in self.ln + self.streams
                                         if x["verdict"] != Verdict.NO_RULE)

    def summary(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for c in self.primary:
            out[c.verdict] = out.get(c.verdict, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> dict:
        data = self.prediction.to_json()
        by_node: dict[str, dict] = {}
        for c in self.checks:
            key = "a_rate" if c.factor == "A" else "g_rate"
            entry = by_node.setdefault(c.node, {"measured": {}, "se": {}, "verdict": {}, "observables": {}})
            if c.observable == "dd" and c.direction == 1:
                entry["measured"][key] = _num(c.fit.slope)
                entry["se"][key] = _num(c.fit.se)
                entry["verdict"][key] = c.verdict
            entry["observables"][f"{c.factor}_{c.observable}_{c.direction}"] = {
                "predicted": _pred_json(c.predicted), "verdict": c.verdict, "tol": c.tol, "regime": c.regime,
                **c.fit.as_dict()}
        for node in data["nodes"]:
            node.update(by_node.get(node["node"], {"measured": None, "se": None, "verdict": None}))
        data["grid"] = list(self.measurement.grid)
        data["adaptive"] = self.measurement.adaptive
        data["n_samples"] = self.measurement.n_samples
        data["tolerances"] = {"default": TOL, "bands": self.bands}
        data["ln_checks"] = list(self.ln)
        data["stream_checks"] = list(self.streams)
        data["nan"] = {str(t): where for t, where in self.measurement.nan.items()}
        data["skipped"] = list(self.measurement.skipped)
        data["constant_blocks_that_moved"] = list(self.measurement.moved)
        data["summary"] = self.summary()
        data["ok"] = self.ok
        return data

    def to_frame(self):
        """Every check as a pandas DataFrame, one row per check (needs pandas)."""
        from ddgraph.output.frames import diff_frame

        return diff_frame(self)


def _num(x):
    return None if x is None or not math.isfinite(x) else round(x, 6)


def _pred_json(p):
    if p is None:
        return None
    if isinstance(p, tuple):
        return [_pred_json(p[0]), _pred_json(p[1])]
    return "inf" if math.isinf(p) else p


def _band(prediction: Prediction, n) -> float:
    """A node's tolerance: the widest finite-t band among the rules on its critical path (a smooth
    activation's rule, or any rule or primitive that declares one), and the default otherwise."""
    return max([TOL] + [prediction.bands[r] for r in n.rules if r in prediction.bands])


def _predicted(pair):
    lo, hi = pair
    return None if lo is None or hi is None else (lo if lo == hi else (lo, hi))


def expectations(prediction: Prediction) -> dict:
    """What each dead entry and stream site is predicted to do, keyed as the probe's adaptive sweep
    reads them (:func:`ddgraph.probing.measure.probe`)."""
    out = {}
    for n in prediction.nodes:
        tol = _band(prediction, n)
        for factor, rates in (("A", n.a_rates), ("G", n.g_rates)):
            for j, pair in enumerate(rates, 1):
                out[(n.node, factor, j)] = Expected(_predicted(pair), tol)
    for site in prediction.stream_sites:
        out[("stream", site["node"])] = Expected(site["stream_rate"], TOL)
    return out


def _fit(measurement: Measurement, values, tol: float, scale=None) -> Fit:
    """The rate of one series: on its own window after an adaptive sweep, on the whole pinned grid otherwise."""
    fit = fit_window if measurement.adaptive else fit_rate
    return fit(measurement.grid, values, tol=tol, scale=scale)


def diff(prediction: Prediction, measurement: Measurement) -> Diff:
    """Check every prediction against the measurement of the same node, each in its node's band."""
    checks = []
    grid = measurement.grid
    bands = prediction.bands
    for n in prediction.nodes:
        series = measurement.weights.get(n.node)
        tol = _band(prediction, n)
        for factor in ("A", "G"):
            for j in range(1, len(n.a_rates) + 1):
                for obs in OBSERVABLES:
                    if series is None:
                        fit = Fit(math.nan, math.nan, math.nan, (grid[-1], grid[0]), (), FitStatus.UNFITTABLE,
                                  "not measured (see skipped)")
                    else:
                        values = series.series[factor][obs][j]
                        scale = series.series[factor]["lmax"][j] if obs == "lmin" else None
                        fit = _fit(measurement, values, tol, scale)
                    # the eps regime the fit's own window sits in (THEORY §3.8) says what to expect there
                    a_rates, g_rates, status, regime = in_window(n, (min(fit.window), max(fit.window)))
                    predicted = _predicted((a_rates if factor == "A" else g_rates)[j - 1])
                    checks.append(Check(n.node, n.param, factor, j, obs, predicted, fit,
                                        judge(predicted, fit, tol=tol), tol, status, regime))
    ln = tuple(_ln_check(prediction, measurement, name, rec) for name, rec in measurement.ln.items())
    streams = tuple(_stream_check(prediction, measurement, s) for s in prediction.stream_sites)
    return Diff(prediction, measurement, tuple(checks), ln, streams, dict(bands))


def _ln_check(prediction, measurement, name, rec) -> dict:
    prim = prediction.graph[name][PRIMITIVE]
    ratio, cosine = max(rec["ratio"], default=math.nan), min(rec["cosine"], default=math.nan)
    rayleigh = max(rec.get("rayleigh", ()), key=abs, default=math.nan)
    if "kernel" in prediction.graph.primitives[prim].observables:
        ok = holds_kernel(rayleigh)
        claim = "exact kernel along 1/gamma (Prop 63)"
    else:
        inherited = max(rec.get("input_ratio", ()), default=math.nan) <= LN_RATIO_MAX
        ok = ratio > LN_RATIO_MAX or inherited
        claim = "no kernel direction (RMSNorm)" + (": its input's own kernel, inherited" if inherited else "")
    return {"node": name, "module": rec["module"], "primitive": prim, "claim": claim,
            "max_ratio": ratio, "max_rayleigh": rayleigh, "min_cosine": cosine, "verdict": Verdict.PASS if ok else Verdict.FAIL}


def _stream_check(prediction, measurement, site) -> dict:
    values = measurement.streams.get(site["node"], [])
    pred = site["stream_rate"]
    fit = _fit(measurement, values, TOL) if values else None
    verdict = judge(pred, fit, tol=TOL) if fit else Verdict.UNFITTABLE
    return {"node": site["node"], "module": site["module"], "predicted": pred,
            "measured": None if fit is None else _num(fit.slope), "verdict": verdict,
            "claim": "sigma_min^2 of the residual stream (Cor 58)"}
