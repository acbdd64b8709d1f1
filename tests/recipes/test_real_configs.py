"""The real model's configs as evidence (zlab.recipes.real_configs): no setting left unexplained."""

from pathlib import Path

import pytest

from zlab.recipes.real_configs import config_evidence, format_evidence

ROOT = Path(__file__).resolve().parents[2]


def test_a_setting_takes_its_own_comment_or_the_block_above_it(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('method = "ladd"  # the method\n\n[train]  # a section\n# two lines\n# of reasons\nsteps = 10\n'
                    'lr = 1e-4\nurl = "a#b"  # a hash inside a string is not a comment\n')
    rows = {r["key"]: r for r in config_evidence(path)}
    assert rows["method"]["why"] == "the method" and rows["steps"]["why"] == "two lines of reasons"
    assert rows["steps"]["section"] == "train" and rows["lr"]["why"] == ""  # the block served the line below it only
    assert rows["url"]["value"] == '"a#b"' and rows["url"]["why"] == "a hash inside a string is not a comment"
    assert "| train.lr | `1e-4` | – |" in format_evidence(path)
    path.write_text("steps = \n")
    with pytest.raises(Exception):
        config_evidence(path)


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("zimage-*.toml")))
def test_every_setting_of_the_real_configs_says_why(name):
    rows = config_evidence(ROOT / "configs" / name)
    assert len(rows) > 20
    assert [f"{r['section']}.{r['key']}" for r in rows if len(r["why"]) < 8] == []
