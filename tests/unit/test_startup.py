"""What the ``batchdrop`` program does before and after a small file's work: what it imports,
how it leaves the garbage collector, and how it reads its config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from batchdrop.config import load_config
from batchdrop.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "examples" / "students" / "batchdrop.yaml"
CORPUS_CONFIG = ROOT / "tests" / "data" / "corpus" / "corpus.yaml"

CONFIG = """\
inbound: {root}/inbound
archive: {root}/archive
errors: {root}/errors
table: {{url: "sqlite:///{root}/db.sqlite", name: students, partition_key: student_id,
        sort_key: course}}
schema:
  fields:
    - {{name: student_id, constraints: {{required: true}}}}
    - {{name: course, constraints: {{required: true}}}}
notify: []
"""

#: runs the program as its console script does, and says at exit what the process was left with
PROGRAM = """
import atexit, gc, json, sys
config, path, collector = sys.argv[1:]
if collector == "off":
    gc.disable()
LOOKED_FOR = ("batchdrop.config_errors", "difflib", "boto3", "botocore", "batchdrop.shards")

def said_at_exit():
    sys.stderr.write("STATE " + json.dumps({
        "imported": [m for m in LOOKED_FOR if m in sys.modules],
        "frozen": gc.get_freeze_count(),
        "collecting": gc.isenabled(),
    }) + "\\n")

atexit.register(said_at_exit)
sys.argv = ["batchdrop", "--config", config, "validate", path, "--json"]
from batchdrop.cli import main
main()
"""


def _validate(
    tmp_path: Path, collector: str = "on"
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    for d in ("inbound", "archive", "errors"):
        (tmp_path / d).mkdir(exist_ok=True)
    config = tmp_path / "batchdrop.yaml"
    config.write_text(CONFIG.format(root=tmp_path), encoding="utf-8")
    rows = "".join(f"A{i:05d},course {i}\n" for i in range(10))
    data = tmp_path / "tiny.csv"
    data.write_text("student_id,course\n" + rows, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(config), str(data), collector],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("STATE "))
    return done, json.loads(line.removeprefix("STATE "))


def test_validate_of_a_small_file_leaves_what_it_does_not_need_unimported(
    tmp_path: Path,
) -> None:
    done, state = _validate(tmp_path)
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert (receipt["status"], receipt["rows_read"], receipt["rows_loaded"]) == (
        "would_load",
        10,
        10,
    )
    # a config without problems never needs their descriptions (nor difflib's suggestions);
    # local mode never needs the AWS SDK
    assert state["imported"] == []


def test_start_up_objects_are_out_of_the_collectors_sight_and_it_still_collects(
    tmp_path: Path,
) -> None:
    done, state = _validate(tmp_path)
    assert done.returncode == 0, done.stderr
    # modules, classes and the config's validators: thousands of objects no collection walks
    assert state["frozen"] > 10_000
    # the collector runs for what the command itself makes (a long `run` must not grow)
    assert state["collecting"] is True


def test_a_collector_the_caller_paused_stays_paused(tmp_path: Path) -> None:
    done, state = _validate(tmp_path, collector="off")
    assert done.returncode == 0, done.stderr
    assert state["collecting"] is False


def test_importing_the_cli_leaves_the_config_machinery_to_main() -> None:
    """``main`` imports pydantic and builds the config's models with the collector paused:
    an import of the cli module that already did it would leave that to the collector."""
    code = (
        "import sys, batchdrop.cli; "
        "print(sorted({'pydantic', 'batchdrop.config'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"


# --- reading the config file -------------------------------------------------------------

needs_libyaml = pytest.mark.skipif(
    not hasattr(yaml, "CSafeLoader"), reason="PyYAML built without libyaml"
)

#: YAML whose reading differs most between parsers: scalars the resolver types, quoting,
#: block scalars, anchors, flow collections, comments, non-ASCII text, a byte-order mark
TRICKY = [
    "a: 2001-12-14\nb: 2001-12-14t21:59:43.10-05:00\nc: 0o17\nd: 017\ne: 1_000\nf: .inf\n"
    "g: yes\nh: ~\ni: 1e3\nj: 0x1F\nk: '010'\nl: -.5\nm: +12\n",
    "text: |\n  first\n   second\n\nfolded: >\n  one\n  two\nkeep: |+\n  x\n\n",
    "base: &base {url: 'sqlite:///x.db', partition_key: id}\ntable: *base\n",
    "quoted: \"tab\\there \\u00e9 \\x41\"\nsingle: 'it''s'\nplain: a b  c\n",
    "\ufeffname: élève\nlist: [a, 'b', \"c\", {d: 1}]\nempty: []\nnothing:\n",
    "# a comment\nkey: value # trailing\n? complex\n: mapped\n",
    "",
]


@needs_libyaml
@pytest.mark.parametrize("path", [EXAMPLE_CONFIG, CORPUS_CONFIG], ids=lambda p: p.name)
def test_both_yaml_parsers_read_the_bundled_configs_alike(path: Path) -> None:
    from batchdrop.config import parse_yaml

    text = path.read_text(encoding="utf-8")
    assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text)
    assert parse_yaml(text, str(path)) == yaml.safe_load(text)


@needs_libyaml
@pytest.mark.parametrize("text", TRICKY, ids=range(len(TRICKY)))
def test_both_yaml_parsers_read_tricky_yaml_alike(text: str) -> None:
    from batchdrop.config import parse_yaml

    assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text)
    assert parse_yaml(text, "t.yaml") == yaml.safe_load(text)


@needs_libyaml
def test_a_valid_config_is_read_by_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def pure_python(*args: object, **kwargs: object) -> object:
        raise AssertionError("the pure-Python parser read a valid config")

    monkeypatch.setattr(yaml, "safe_load", pure_python)
    config = load_config(EXAMPLE_CONFIG, environ={})
    assert config.table.partition_key == "student_id"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\nb: 3\n", "line 2, column 2: expected ',' or ']', but got ':'"),
        ("a: &x 1\nb: *y\n", "line 2, column 4: found undefined alias 'y'"),
        ('k: "bad \\q"\n', "line 1, column 10: found unknown escape character 'q'"),
        ("{a: 1", "line 1, column 6: expected ',' or '}', but got '<stream end>'"),
    ],
)
def test_a_broken_config_is_described_by_the_pure_python_parser(
    tmp_path: Path, text: str, message: str
) -> None:
    """libyaml's own messages say less ("did not find expected ',' or ']'") and sometimes
    point elsewhere: the message shown is the pure-Python parser's."""
    path = tmp_path / "batchdrop.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert str(caught.value) == f"{path}: not valid YAML at {message}"
