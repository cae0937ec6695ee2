"""The main job's table in recipes/README.md is what its command prints (long: `pytest -m slow`)."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
RECIPES_README = REPO / "recipes" / "README.md"
PAIRS = (("mnist", "usps"), ("usps", "mnist"))


def readme_rows():
    """(primary, target, method) -> (train, test) of the transfer tables in recipes/README.md."""
    text = RECIPES_README.read_text()
    rows = {}
    pattern = r"^(\w+)\s+(\w+)\s+([\w-]+)\s+([\d.]+) \+- [\d.]+\s+([\d.]+) \+- [\d.]+\s+[\d.]+$"
    for m in re.finditer(pattern, text, re.M):
        rows[m.group(1), m.group(2), m.group(3)] = (float(m.group(4)), float(m.group(5)))
    return rows


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
        train, test = expected[r["primary"], r["target"], r["method"]]
        assert round(r["train"], 2) == train and round(r["test"], 2) == test, r
