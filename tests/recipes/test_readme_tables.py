"""The README's main-job table is what its command prints (long: `pytest -m slow`)."""

import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def readme_rows():
    """(primary, target, method) -> (train, test) of the main job's table in README.md."""
    text = (REPO / "README.md").read_text()
    rows = {}
    pattern = r"^(\w+)\s+(\w+)\s+([\w-]+)\s+([\d.]+) \+- [\d.]+\s+([\d.]+) \+- [\d.]+\s+[\d.]+$"
    for m in re.finditer(pattern, text, re.M):
        rows[m.group(1), m.group(2), m.group(3)] = (float(m.group(4)), float(m.group(5)))
    return rows


@pytest.mark.slow
def test_main_job_prints_the_readme_table(tmp_path, load_recipe):
    expected = {
        k: v for k, v in readme_rows().items() if k[:2] in (("mnist", "usps"), ("usps", "mnist"))
    }
    assert len(expected) == 8
    out = load_recipe("bpa_paper").main(["--saved-models", str(tmp_path)])
    for r in out["results"]:
        train, test = expected[r["primary"], r["target"], r["method"]]
        assert round(r["train"], 2) == train and round(r["test"], 2) == test, r
