"""The main job's table in recipes/README.md is what its command prints (long: `pytest -m slow`).

On the processor and software the table was made with the command prints the same digits. On
another one the runs round differently and training carries the differences on, so each printed
mean is compared with the table's within the tolerance the README states: twice the larger of the
two seed sds, and at least half a point (`TOLERANCE`).
"""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPES_README = REPO / "recipes" / "README.md"
PAIRS = (("mnist", "usps"), ("usps", "mnist"))


MIN_TOLERANCE = 0.5  # points of error (%)


def readme_rows():
    """(primary, target, method) -> ((train, sd), (test, sd)) of the transfer tables in
    recipes/README.md."""
    text = RECIPES_README.read_text()
    rows = {}
    number = r"([\d.]+) \+- ([\d.]+)"
    pattern = rf"^(\w+)\s+(\w+)\s+([\w-]+)\s+{number}\s+{number}\s+[\d.]+$"
    for m in re.finditer(pattern, text, re.M):
        values = [float(v) for v in m.groups()[3:]]
        rows[m.group(1), m.group(2), m.group(3)] = (tuple(values[:2]), tuple(values[2:]))
    return rows


def tolerance(sd_readme, sd_printed):
    """How far a printed mean may be from the README's on another machine (see the module)."""
    return max(2 * max(sd_readme, sd_printed), MIN_TOLERANCE)


def main_job_rows():
    return {k: v for k, v in readme_rows().items() if k[:2] in PAIRS}


def test_recipes_readme_holds_the_main_job_table():
    rows = main_job_rows()
    methods = ("standard", "fine-tune", "bpa-paper", "bpa-agreement")
    assert sorted(rows) == sorted((*pair, method) for pair in PAIRS for method in methods)


@pytest.mark.slow
def test_main_job_prints_the_readme_table(tmp_path, load_recipe):
    expected = main_job_rows()
    assert len(expected) == 8
    out = load_recipe("bpa_paper").main(["--saved-models", str(tmp_path)])
    for r in out["results"]:
        row = expected[r["primary"], r["target"], r["method"]]
        for (mean, sd), printed, printed_sd in zip(
            row, (r["train"], r["test"]), (r["train_sd"], r["test_sd"])
        ):
            assert abs(printed - mean) <= tolerance(sd, printed_sd), (r, row)
