"""Hostile names through every command: control characters, `$...$` (matplotlib's math text),
`{}` and `%` (format strings), bidi marks, 255-byte names, very deep paths, leading dashes, HTML.

A fault in one file is a row or a line, never a traceback. `curate run` over a tree whose class
folders and file names are all of these runs every stage (embed, semantic dedup, rebalance,
shard, augment, publish into a throwaway FiftyOne database, report) and accounts for every
image; a hypothesis part runs scan + report over generated names; `curate quarantine --copy`
lists an unreadable, a vanished and a too-long file as not copied, with why, and copies the rest.
It also holds the regressions of three faults it found: names printed raw on the terminal, a file
name that is not UTF-8, and publish's map of 3..50 embedded images.
"""
from __future__ import annotations

import csv
import fnmatch
import html
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from curate.config import from_dict
from curate.pipeline import run_stage
from curate.schema import MANIFEST, PLAN, SPLITS
from curate.view import visible
from curate.workspace import Workspace

from conftest import encode, photo_like, write

BIN = Path(sys.executable).parent
NAME_MAX = 255

# class folders (they are the labels)
CLASSES = [
    "ctl\x01\x1b[31mred\x7f",  # a control character and a terminal colour escape
    "tab\there\nnewline\r",
    "$x$",
    "x$\\undefinedcmd{$y",  # matplotlib's math text raises on it
    "{}{0}{name}",  # str.format placeholders
    "%s %d %(x)s %n%%",  # printf and logging placeholders
    "\u202eevil\u202c.jpg",  # right-to-left override
    "\u2066isolate\u2069",  # left-to-right isolate
    "é" * 127 + "x",  # 255 bytes in UTF-8
    "-rf",
    "--help",
    "<b onclick=x>bold & \"quoted\" 'too'",  # HTML
    "[glob]*?",
    "deep",  # its images lie 24 folders down (see DEEP)
]
DEEP = [f"{i:02d}" + "d" * 90 for i in range(24)]  # ~2.2 KB of path under deep/
# file names, given out to the classes in turn
FILES = [
    "\x01\x02ctl.jpg", "tab\t.jpg", "new\nline.jpg", "$x$.jpg", "$\\undefinedcmd{$.jpg", "{}.jpg", "%s %d.jpg",
    "photo\u202egpj.exe.jpg", "\u2066x\u2069.jpg", "n" * (NAME_MAX - 4) + ".jpg", "-rf.jpg", "--help.jpg",
    "<img src=x onerror=alert(1)>.jpg", "[a]*?.jpg", "plain.jpg", "-.jpg",
]
PER_CLASS = 4  # 56 images: publish's embedding map needs more than 50 (see test_every_stage_over_hostile_names)
HIDDEN = "\x01\x1b\x7f\t\r\u202e\u2066"  # no name may reach a terminal with these in it


def hostile_tree(src: Path, per_class: int = PER_CLASS) -> list[str]:
    """Write `per_class` generated JPEGs into every class of CLASSES (file names from FILES; the
    first of every second class a byte copy of the first of the class before); return their paths
    relative to src (POSIX)."""
    paths = []
    for i, cls in enumerate(CLASSES):
        folder = Path(cls, *DEEP) if cls == "deep" else Path(cls)
        for j in range(per_class):
            k = i * per_class + j
            rel = folder / FILES[k % len(FILES)]
            seed = k - per_class if i % 2 and j == 0 else k  # a copy of the class before's first: a conflict
            write(src / rel, encode(photo_like(seed, (64, 48))))
            paths.append(rel.as_posix())
    return paths


def curate(*args: str) -> subprocess.CompletedProcess:
    """`curate ARGS` as a user runs it (its own process, this test's environment)."""
    return subprocess.run([str(BIN / "curate"), *args], capture_output=True, text=True, errors="backslashreplace",
                          timeout=900)


def clean(run: subprocess.CompletedProcess) -> str:
    """The command's output, for an assertion message, once it is known to hold no traceback and no
    raw hidden character of a name (a terminal escape would act on the user's terminal)."""
    output = run.stdout + run.stderr
    assert "Traceback" not in output, output[-6000:]
    assert not set(HIDDEN) & set(output), ascii(output[-6000:])
    return output[-6000:]


EVERY_STAGE = """
[engine]
workers = 1
[embed]
device = "cpu"
batch_size = 8
[dedup]
semantic = true
similarity = 0.99  # generated images look alike to the model: only near copies are duplicates
[rebalance]
strategy = "floor"
floor = 5
[augment]
copies = 1
size = 32
device = "cpu"
[publish]
name = "curate-test-names"
"""


@pytest.mark.slow
def test_every_stage_over_hostile_names(fodb, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    paths = hostile_tree(src)
    config = tmp_path / "every-stage.toml"
    config.write_text(EVERY_STAGE)
    run = curate("run", str(src), "-o", str(out), "--config", str(config))
    assert run.returncode == 0, clean(run)
    clean(run)
    ws = Workspace(str(out))
    manifest = ws.read("manifest", MANIFEST).to_pandas()
    assert sorted(manifest["path"]) == sorted(paths) and (manifest["status"] == "ok").all()
    assert sorted(manifest["label"]) == sorted(c for c in CLASSES for _ in range(PER_CLASS))
    plan = ws.read("plan", PLAN).to_pandas()
    assert sorted(plan["path"]) == sorted(paths)
    kept = plan[plan["keep"]]
    assert (plan.loc[~plan["keep"], "reason"].str.startswith("duplicate")).all()
    assert len(kept) == len(paths) - len(CLASSES)  # every second class's first is a copy: both go (conflict)
    index = pq.read_table(out / "index.parquet").to_pandas()
    shards = index[index["shard"].str.startswith("shards/")]
    augmented = index[index["shard"].str.startswith("augmented/")]
    assert sorted(set(shards["sample_id"])) == sorted(kept["sample_id"]) and len(shards) == kept["copies"].sum()
    assert len(augmented) == len(kept)  # one variant each
    from curate.data import ShardDataset  # torch: only here

    assert len(ShardDataset(str(out), include_augmented=True)) == len(index)
    assert ShardDataset(str(out))[0][0].shape[0] == 3
    page = (out / "report" / "index.html").read_text()
    for cls in CLASSES:
        assert html.escape(visible(cls)) in page, cls
    assert "<b onclick" not in page and "<img src=x" not in page and not set(HIDDEN) & set(page)
    assert sorted(ws.read_json("dataset.json")["report"]["classes"]) == sorted(CLASSES)
    published = ws.read_json("runs/publish.json")["summary"]
    assert published["samples"] == len(paths) + len(augmented)


@pytest.mark.slow
def test_publish_of_fewer_than_51_embedded_images(fodb, tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    paths = hostile_tree(src, per_class=2)  # 28 images: what the first run of this fuzz had
    cfg = from_dict({"engine": {"workers": 1}, "embed": {"device": "cpu"}, "publish": {"name": "curate-test-few"}})
    for stage in ("scan", "embed", "publish"):
        summary = run_stage(stage, str(src), str(out), cfg)
    assert summary.samples == len(paths)


def test_a_name_that_is_not_utf8_is_a_row(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    write(src / "ok" / "a.jpg", encode(photo_like(1)))
    write(Path(os.fsdecode(bytes(src) + b"/bad\xffclass/x\xfe.jpg")), encode(photo_like(2)))
    run = curate("scan", str(src), "-o", str(out))
    assert run.returncode == 0, clean(run)
    manifest = Workspace(str(out)).read("manifest", MANIFEST).to_pandas().set_index("path")
    assert len(manifest) == 2 and manifest.at["ok/a.jpg", "status"] == "ok"


# --- generated names: scan + report ---------------------------------------------------------------

IGNORED = from_dict({}).scan.ignore
ODD = "$\\{}%-<>&\"' \t\n\r\x01\x1b\x7f\u202e\u202c\u2066\u2069\u200béあ[]*?"


def fits(name: str) -> bool:
    """Whether `name` is a file or folder name the scan keeps as it is: one path component, not
    hidden or ignored (`scan.ignore`), not a split's name (the layout would read it as a split)."""
    return (name not in {".", "..", *SPLITS} and "/" not in name and "\x00" not in name
            and not any(fnmatch.fnmatch(name, pattern) for pattern in IGNORED))


def cut(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes of UTF-8 (whole characters)."""
    return name.encode()[:limit].decode(errors="ignore")


def names(limit: int) -> st.SearchStrategy[str]:
    """Names of at most `limit` bytes: short runs of ODD characters, any text, or a run of ODD
    characters as long as it may be."""
    return st.one_of(
        st.text(st.sampled_from(ODD), min_size=1, max_size=12),
        st.text(st.characters(exclude_characters="/\x00", exclude_categories=("Cs",)), min_size=1, max_size=24),
        st.text(st.sampled_from(ODD), min_size=1, max_size=4).map(lambda s: s * NAME_MAX),
    ).map(lambda s: cut(s, limit)).filter(lambda s: bool(s) and fits(s))


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(classes=st.lists(names(NAME_MAX), min_size=1, max_size=3, unique=True), file=names(NAME_MAX - 4))
def test_generated_names_scan_and_report(tmp_path, classes, file):
    case = tmp_path / str(len(list(tmp_path.iterdir())))
    src, out = case / "src", case / "out"
    for i, cls in enumerate(classes):
        write(src / cls / f"{file}.jpg", encode(photo_like(i, (48, 36))))
    cfg = from_dict({"engine": {"workers": 1}, "scan": {"isolate": False}})
    run_stage("scan", str(src), str(out), cfg)
    run_stage("report", str(src), str(out), cfg)
    manifest = Workspace(str(out)).read("manifest", MANIFEST).to_pandas()
    assert sorted(manifest["label"]) == sorted(classes) and (manifest["status"] == "ok").all()
    page = (out / "report" / "index.html").read_text()
    assert all(html.escape(visible(cls)) in page for cls in classes)
    assert not set(HIDDEN) & set(page)


# --- quarantine --copy ------------------------------------------------------------------------------

PATH_MAX = 4096


def long_path(length: int) -> str:
    """A relative path of `length` bytes under --help/: 200-byte folders, then a file name."""
    parts = ["--help"]
    while length - len("/".join(parts)) > NAME_MAX + 1:
        parts.append(f"{len(parts):02d}" + "f" * 198)
    return "/".join([*parts, "n" * (length - len("/".join(parts)) - 5) + ".jpg"])


def quarantine_tree(src: Path, dest: Path) -> dict[str, str]:
    """Good images and bad files (which validation excludes) with hostile names; return each bad
    file's path -> what quarantine should do with it (copy, or why not). One bad file's path fits
    under src but not under dest/files/."""
    for i, cls in enumerate(["$x$", "-rf", "\u202eevil"]):
        write(src / cls / "fine.jpg", encode(photo_like(i)))
    broken = encode(photo_like(9))
    far = long_path(PATH_MAX - 2 - len(str(src)))
    assert len(str(dest / "files" / far)) >= PATH_MAX
    bad = {
        "-rf/--help.jpg": (b"not an image\n", "yes"),
        "\u202eevil/%s %d\x01.jpg": (broken[: len(broken) // 2], "yes"),
        "$x$/$\\undefinedcmd{$.jpg": (broken[: len(broken) // 2], "unreadable: Permission denied"),
        "x$y/new\nline.jpg": (b"", "vanished: no longer in SRC"),
        far: (b"text", "its path is too long under the quarantine folder"),
    }
    for rel, (data, _) in bad.items():
        write(src / rel, data)
    return {rel: outcome for rel, (_, outcome) in bad.items()}


@pytest.mark.skipif(shutil.which("capsh") is None, reason="needs capsh to drop root's permission override")
def test_quarantine_copy_with_unreadable_vanished_and_too_long_files(tmp_path):
    src, out, dest = tmp_path / "src", tmp_path / "out", tmp_path / ("q" * 100)
    bad = quarantine_tree(src, dest)
    cfg = from_dict({"engine": {"workers": 1}})
    for stage in ("scan", "validate"):
        run_stage(stage, str(src), str(out), cfg)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    locked = src / "$x$" / "$\\undefinedcmd{$.jpg"
    (src / "x$y" / "new\nline.jpg").unlink()
    locked.chmod(0)
    try:  # root reads everything: drop that capability, as a user without access to the file runs it
        run = subprocess.run(["capsh", "--drop=cap_dac_override,cap_dac_read_search", "--", "-c",
                              f"'{BIN / 'curate'}' quarantine '{out}' --to '{dest}' --copy"],
                             capture_output=True, text=True)
    finally:
        locked.chmod(0o644)
    assert run.returncode == 0, clean(run)
    clean(run)
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO((dest / "quarantine.csv").read_text(), newline=""))}
    assert set(rows) == set(bad)
    for rel, outcome in bad.items():
        row, copy = rows[rel], dest / "files" / rel
        if outcome == "yes":
            assert (row["copied"], row["not_copied_because"]) == ("yes", "") and copy.read_bytes() == before[src / rel]
        else:
            assert row["copied"] == "no" and row["not_copied_because"].startswith(outcome), row
            assert repr(rel) in run.stderr and outcome in run.stderr  # a line names it
            assert not os.path.exists(copy)  # (False too where the path is too long to look at)
    assert not [p for p in dest.rglob("*") if p.name.startswith(".tmp-")]  # no partial file left
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == {
        p: b for p, b in before.items() if p.name != "new\nline.jpg"}

    (tmp_path / "a-file").write_text("")
    unwritable = curate("quarantine", str(out), "--to", str(tmp_path / "a-file" / "q"), "--copy")  # not a folder
    assert unwritable.returncode == 2 and clean(unwritable)
    assert unwritable.stderr.startswith(f"error: cannot write {tmp_path / 'a-file' / 'q'}: Not a directory")
    assert unwritable.stderr.count("\n") == 1


def test_terminal_views_show_hidden_characters_escaped(tmp_path):
    src, out = tmp_path / "src", tmp_path / "out"
    image = encode(photo_like(1))
    for cls in ("ctl\x01\x1b[31mred", "\u202eevil\u202c"):
        write(src / cls / "\u2066x\u2069.jpg", image)  # the same bytes: a duplicate across the classes
    for args in (["scan", str(src), "-o", str(out)], ["dedup", str(out)], ["rebalance", str(out)]):
        run = curate(*args)
        assert run.returncode == 0, run.stderr
        clean(run)
