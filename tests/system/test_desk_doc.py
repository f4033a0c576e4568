"""docs/desk.md and its screenshots agree with scripts/desk_screenshots.py, and the script still works.

Every picture the tour names exists, is a 1366x768 PNG under 150 KB, and is one of the script's
shots; every shot of the script is on the page once (as a picture, or as the comment the script
leaves for a page this branch does not have); no picture lies around unused.
"""
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys

import pytest

from tests.helpers.browser import needs_chromium
from tests.helpers import REPO

DOC = os.path.join(REPO, "docs", "desk.md")
PICTURES = os.path.join(REPO, "docs", "desk")


def script():
    spec = importlib.util.spec_from_file_location("desk_screenshots",
                                                  os.path.join(REPO, "scripts", "desk_screenshots.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shot_lines(text):
    """[(name, 'image' or 'skipped')] in the order of the page."""
    found = []
    for line in text.split("\n"):
        for name in re.findall(r"\]\(desk/([^)\s]+)\.png\)", line):
            found.append((name, "image"))
        found += [(name, "skipped") for name in re.findall(r"<!-- shot ([a-z0-9-]+) skipped: ", line)]
    return found


def png_size(path):
    with open(path, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_every_picture_named_in_the_tour_exists_and_is_small():
    with open(DOC, encoding="utf-8") as handle:
        named = [name for name, kind in shot_lines(handle.read()) if kind == "image"]
    assert named, "docs/desk.md shows no picture"
    for name in named:
        path = os.path.join(PICTURES, f"{name}.png")
        assert os.path.exists(path), f"docs/desk.md shows desk/{name}.png, which does not exist"
        assert os.path.getsize(path) < 150_000, f"{path}: {os.path.getsize(path)} bytes"
        assert png_size(path) == (1366, 768), path
    unused = sorted(set(os.path.splitext(f)[0] for f in os.listdir(PICTURES)) - set(named))
    assert not unused, f"pictures in docs/desk/ that docs/desk.md does not show: {unused}"


def test_the_tour_and_the_scripts_list_of_shots_agree():
    with open(DOC, encoding="utf-8") as handle:
        on_page = [name for name, _ in shot_lines(handle.read())]
    shots = [shot.name for shot in script().SHOTS]
    assert on_page == shots, "docs/desk.md and scripts/desk_screenshots.py SHOTS list different shots (or order)"
    stepped = [name for _, *names in script().STEPS for name in names]
    assert stepped == shots, "every shot is taken by exactly one step, in the order of the tour"


def test_a_rerun_turns_a_skipped_line_into_the_picture_and_back(tmp_path):
    module = script()
    doc = tmp_path / "desk.md"
    first, second = module.SHOTS[0], module.SHOTS[1]
    doc.write_text(f"# Tour\n\nWords.\n\n{module.shot_line(first)}\n\n{module.shot_line(second, 'no page')}\n")
    module.update_doc(str(doc), taken={second.name}, skipped={first.name: "no 'Renew' button on /loans"})
    text = doc.read_text()
    assert f"<!-- shot {first.name} skipped: no 'Renew' button on /loans; re-run" in text
    assert f"![{second.caption}](desk/{second.name}.png)" in text
    assert text.startswith("# Tour\n\nWords.\n\n")


@pytest.mark.browser
@pytest.mark.slow
@needs_chromium
def test_the_script_walks_the_tour_on_a_real_demo(tmp_path):
    doc = tmp_path / "desk.md"
    shutil.copy(DOC, doc)
    result = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "desk_screenshots.py"),
                             "--out", str(tmp_path / "desk"), "--doc", str(doc)],
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr  # no step failed (a missing page only skips)
    taken = [name for name, kind in shot_lines(doc.read_text()) if kind == "image"]
    for name in ("sign-in", "checkout", "visit-scans", "return-transit", "loans", "offline-checkout", "sync-queue"):
        assert name in taken, result.stdout
    for name in taken:
        assert os.path.getsize(tmp_path / "desk" / f"{name}.png") < 150_000
