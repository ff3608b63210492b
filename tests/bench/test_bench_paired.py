"""The SQLite bench's ratios are paired round by round (bench/run.py ``paired``): a floor's
lucky fast run must not decide a target on its own."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_run() -> object:
    sys.path.insert(0, str(BENCH))  # run.py imports gen.py beside it
    try:
        spec = importlib.util.spec_from_file_location("bench_run", BENCH / "run.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_run"] = module  # dataclasses look their module up by name
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_a_ratio_is_the_median_of_the_rounds_not_best_over_best() -> None:
    run = load_run()
    measure, best, paired = run.Measure, run.best, run.paired  # type: ignore[attr-defined]

    def runs(*walls: float) -> list[object]:
        return [measure("step", wall, 10.0, 0, "", "", rows=1000) for wall in walls]

    floor = best(runs(0.67, 1.01, 1.01))  # one lucky moment for the floor
    contender = best(runs(1.66, 1.90, 1.99))
    share, how = paired(floor, contender, percent=True)
    assert round(share, 2) == 0.51  # rounds: 40%, 53%, 51%
    assert how == "median of 3 rounds (40%, 53%, 51%)"
    assert round(floor.wall_s / contender.wall_s, 2) == 0.40  # what best over best said
    ratio, how = paired(best(runs(2.0)), best(runs(4.0)))
    assert (ratio, how) == (0.5, "one run")
