"""Benchmark our BG/NBD and Pareto/NBD fits against lifetimes 0.11.3 on synthetic BG/NBD customers.

    .venv/bin/python bench/clv_bench.py [--customers 1000000] [--ref-python /tmp/lt/bin/python]

lifetimes needs pandas, which the project does not, so the reference runs in its own interpreter on the same
data saved to .npz (this file doubles as that worker, importing only numpy and lifetimes). Make one with:

    python3 -m venv /tmp/lt && /tmp/lt/bin/pip install lifetimes==0.11.3

Both sides are timed in wall-clock and process CPU seconds: on a shared machine the wall clock measures the
neighbours as much as the code, while CPU time does not. BLAS runs single-threaded on both sides (ours via
threadpoolctl inside the fit, the reference via OPENBLAS_NUM_THREADS=1), since its thread pool only adds
waiting for these small operations.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

TRUE = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # CDNOW's BG/NBD, weekly
BG_NAMES = ("r", "alpha", "a", "b")
PARETO_NAMES = ("r", "alpha", "s", "beta")


def simulate(n: int, seed: int, max_weeks: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """BG/NBD customers observed 1..max_weeks weeks, recorded at daily resolution like real orders."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE["r"], 1 / TRUE["alpha"], n)
    drop = rng.beta(TRUE["a"], TRUE["b"], n)
    T = rng.integers(7, 7 * max_weeks + 1, n) / 7
    events = rng.poisson(rate * T)
    # Drop-out comes right after a repeat purchase with probability p: the number of purchases the customer
    # would ever make is geometric, and the x-th of `events` uniform purchase times is Beta(x, events-x+1).
    x = np.minimum(events, rng.geometric(drop))
    last = T * rng.beta(np.maximum(x, 1), np.maximum(events - x + 1, 1))
    t_x = np.where(x > 0, np.minimum(np.ceil(last * 7) / 7, T), 0.0)
    return x.astype(np.float64), t_x, T


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, process CPU seconds and the result of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Fastest wall and CPU times of `repeat` runs, and the last result."""
    runs = [timed(fn) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[-1][2]


def reference_worker(data_path: str, out_path: str, pareto: str) -> None:
    """Fit lifetimes on the saved data (runs in the reference interpreter)."""
    import warnings

    warnings.simplefilter("ignore")
    import lifetimes
    import pandas
    import scipy
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    d = np.load(data_path)
    x, t_x, T = d["x"], d["t_x"], d["T"]

    def fit(cls: Any, names: tuple[str, ...], weighted: bool) -> dict[str, Any]:
        def run() -> Any:
            if not weighted:
                return cls().fit(x, t_x, T)
            rows, counts = np.unique(np.column_stack([x, t_x, T]), axis=0, return_counts=True)
            return cls().fit(rows[:, 0], rows[:, 1], rows[:, 2], weights=counts)

        wall, cpu, model = timed(run)
        return {"wall": wall, "cpu": cpu, "params": {k: float(model.params_[k]) for k in names}}

    out: dict[str, Any] = {
        "versions": {
            "lifetimes": lifetimes.__version__,
            "numpy": np.__version__,
            "scipy": scipy.__version__,
            "pandas": pandas.__version__,
            "python": platform.python_version(),
        },
        "bgnbd_raw": fit(BetaGeoFitter, BG_NAMES, weighted=False),
        "bgnbd_weighted": fit(BetaGeoFitter, BG_NAMES, weighted=True),
    }
    if pareto in ("weighted", "both"):
        out["pareto_weighted"] = fit(ParetoNBDFitter, PARETO_NAMES, weighted=True)
    if pareto in ("raw", "both"):
        out["pareto_raw"] = fit(ParetoNBDFitter, PARETO_NAMES, weighted=False)
    Path(out_path).write_text(json.dumps(out))


def find_reference(explicit: str | None) -> str | None:
    """An interpreter that can import lifetimes: this one, --ref-python, or /tmp/lt."""
    import importlib.util

    if explicit:
        return explicit
    if importlib.util.find_spec("lifetimes") is not None:
        return sys.executable
    return "/tmp/lt/bin/python" if Path("/tmp/lt/bin/python").exists() else None


def run_reference(python: str, data: Path, pareto: str, timeout: float) -> dict[str, Any] | str:
    """Run the worker; return its results, or the reason it could not run."""
    out = data.with_suffix(".json")
    cmd = [python, __file__, "--reference-worker", str(data), str(out), "--ref-pareto", pareto]
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return f"lifetimes did not finish within {timeout:.0f} s"
    except OSError as exc:
        return f"cannot start {python}: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return f"lifetimes failed under {python}: {last}"
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def machine() -> dict[str, str]:
    """Where the figures were measured."""
    model = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": model,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
    }


def agreement(ours: dict[str, float], ref: dict[str, float]) -> list[tuple[str, float, float, float, bool]]:
    """Per parameter: ours, reference, relative difference, equal to 3 significant digits."""
    rows = []
    for name, value in ours.items():
        other = ref[name]
        rows.append((name, value, other, abs(value - other) / abs(other), f"{value:.3g}" == f"{other:.3g}"))
    return rows


def load() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(f"{v:.1f}" for v in os.getloadavg())


def row(*cells: object) -> str:
    """A markdown table row."""
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=2005)
    parser.add_argument("--max-weeks", type=int, default=78, help="longest customer age, in weeks")
    parser.add_argument("--repeat", type=int, default=3, help="our fits: best of this many runs")
    parser.add_argument("--ref-python", help="interpreter with lifetimes (default: this one, else /tmp/lt)")
    parser.add_argument("--ref-pareto", choices=["none", "weighted", "raw", "both"], default="weighted")
    parser.add_argument("--ref-timeout", type=float, default=3600.0, help="seconds")
    parser.add_argument("--results", type=Path, default=Path(__file__).with_name("RESULTS_clv.md"))
    parser.add_argument("--reference-worker", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.reference_worker:
        data_path, out_path = args.reference_worker
        reference_worker(data_path, out_path, pareto=args.ref_pareto)
        return

    import scipy

    from kokyaku.analytics.models import BGNBD, ParetoNBD, compress

    load_start = load()
    print(f"simulating {args.customers:,} BG/NBD customers (seed {args.seed}) ...", flush=True)
    x, t_x, T = simulate(args.customers, args.seed, args.max_weeks)
    distinct = compress(x, t_x, T)[0].size
    print("fitting ours ...", flush=True)
    bg_wall, bg_cpu, bg = best_of(args.repeat, lambda: BGNBD.fit(x, t_x, T))
    pa_wall, pa_cpu, pa = best_of(args.repeat, lambda: ParetoNBD.fit(x, t_x, T))

    python = find_reference(args.ref_python)
    ref: dict[str, Any] | str = "no interpreter with lifetimes found (see --ref-python)"
    if python is not None:
        with tempfile.TemporaryDirectory() as tmp:
            data = Path(tmp) / "customers.npz"
            np.savez(data, x=x, t_x=t_x, T=T)
            print(f"fitting lifetimes under {python} ...", flush=True)
            ref = run_reference(python, data, args.ref_pareto, args.ref_timeout)

    try:
        import threadpoolctl  # noqa: F401

        blas = "BLAS limited to one thread during fits (threadpoolctl)"
    except ImportError:
        blas = "threadpoolctl missing, so BLAS threads are not limited"
    lines = [
        "# CLV model fits: Kokyaku vs lifetimes 0.11.3",
        "",
        *(f"- {k}: {v}" for k, v in machine().items()),
        f"- load average (1/5/15 min): {load_start} at the start, {load()} at the end; other work shared "
        "the machine, so the CPU columns are the fairer comparison",
        f"- ours: numpy {np.__version__}, scipy {scipy.__version__}; {blas}",
        f"- data: {args.customers:,} synthetic BG/NBD customers (seed {args.seed}; true r={TRUE['r']}, "
        f"alpha={TRUE['alpha']}, a={TRUE['a']}, b={TRUE['b']}), ages 1-{args.max_weeks} weeks at daily "
        f"resolution; {int(x.sum()):,} repeat purchases; {distinct:,} distinct (x, t_x, T) triples",
        f"- command: `python bench/clv_bench.py {' '.join(sys.argv[1:])}`",
    ]
    table = [
        row("fit", "wall s", "CPU s", "ours faster (wall)", "ours faster (CPU)"),
        row("---", "---:", "---:", "---:", "---:"),
        row(
            f"ours BG/NBD, raw rows (compresses itself; best of {args.repeat})",
            f"{bg_wall:.3f}",
            f"{bg_cpu:.3f}",
            "",
            "",
        ),
        row(f"ours Pareto/NBD, raw rows (best of {args.repeat})", f"{pa_wall:.3f}", f"{pa_cpu:.3f}", "", ""),
    ]
    params = [
        row("model", "parameter", "ours", "lifetimes", "rel. diff", "same to 3 s.f."),
        row("---", "---", "---:", "---:", "---:", "---"),
    ]
    if isinstance(ref, str):
        lines.append(f"- reference not measured: {ref}")
    else:
        versions = ", ".join(f"{k} {v}" for k, v in ref["versions"].items())
        lines.append(f"- reference: {versions}; OPENBLAS_NUM_THREADS=1")
        for key, label, mine in [
            ("bgnbd_raw", "lifetimes BG/NBD, raw rows", (bg_wall, bg_cpu, bg.params)),
            (
                "bgnbd_weighted",
                "lifetimes BG/NBD, given compressed rows + weights",
                (bg_wall, bg_cpu, bg.params),
            ),
            (
                "pareto_weighted",
                "lifetimes Pareto/NBD, given compressed rows + weights",
                (pa_wall, pa_cpu, pa.params),
            ),
            ("pareto_raw", "lifetimes Pareto/NBD, raw rows", (pa_wall, pa_cpu, pa.params)),
        ]:
            if key not in ref:
                continue
            wall, cpu = ref[key]["wall"], ref[key]["cpu"]
            table.append(
                row(label, f"{wall:.3f}", f"{cpu:.3f}", f"{wall / mine[0]:.1f}x", f"{cpu / mine[1]:.1f}x")
            )
            for name, ours, theirs, rel, same in agreement(mine[2], ref[key]["params"]):
                params.append(row(label.removeprefix("lifetimes "), name, f"{ours:.6g}", f"{theirs:.6g}",
                                  f"{rel:.1e}", "yes" if same else "NO"))  # fmt: skip
    report = "\n".join([*lines, "", *table, "", *(params if len(params) > 2 else []), ""])
    args.results.write_text(report)
    print(report)
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
