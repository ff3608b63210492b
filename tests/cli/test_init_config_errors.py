"""A person edits the config that `init` wrote and gets a key wrong: the error names the
key they wrote, the setting they meant, and every other problem at once."""

from __future__ import annotations

from pathlib import Path

from .conftest import bd


def test_a_misspelt_setting_in_an_inferred_config_names_the_fix(tmp_path: Path) -> None:
    (tmp_path / "orders.csv").write_text("order_id,total\nO-1,5\nO-2,7\n")
    assert bd("init", "--from", "orders.csv", cwd=tmp_path).code == 0
    cfg = tmp_path / "batchdrop.yaml"
    text = cfg.read_text()
    cfg.write_text(text.replace("partition_key:", "partiton_key:"))

    r = bd("validate", "orders.csv", cwd=tmp_path)
    assert r.code == 2 and "Traceback" not in r.err
    assert r.err.strip() == (
        "batchdrop: error: batchdrop.yaml: table.partiton_key: is not a batchdrop setting "
        "(did you mean partition_key?)"
    )

    cfg.write_text(text.replace("partition_key:", "partiton_key:").replace("reject_file", "skip"))
    r = bd("validate", "orders.csv", cwd=tmp_path)
    assert r.code == 2
    assert r.err.splitlines() == [
        "batchdrop: error: batchdrop.yaml: 2 problems:",
        "  table.partiton_key: is not a batchdrop setting (did you mean partition_key?)",
        "  on_error: got 'skip'; Input should be 'reject_file' or 'skip_rows' "
        "(did you mean skip_rows?)",
    ]
