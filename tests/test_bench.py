"""Smoke test of bench/: every benchmark script runs end to end at a tiny size and prints a
ratio line with its verdict. The real runs are long and happen outside CI (bench/README.md);
the figures at these sizes mean nothing, only that the scripts still work."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from conftest import REPO

RESULT = re.compile(r"^RESULT .+: .*?\d+\.\d\dx.* \(target <= [\d.]+x\): (PASS|FAIL)$", re.M)
needs_hugo = pytest.mark.skipif(shutil.which("hugo") is None, reason="hugo is not installed")


def bench(script: str, *args: str, tmp_path) -> str:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), "--workdir",
                           str(tmp_path / "work"), *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert RESULT.search(proc.stdout), proc.stdout
    return proc.stdout


@needs_hugo
def test_build_vs_hugo(tmp_path):
    out = bench("build_vs_hugo.py", "--posts", "20", "--runs", "1", tmp_path=tmp_path)
    assert "publisher rss.xml items: 20; hugo index.xml items: 20" in out


@needs_hugo
def test_run_unchanged(tmp_path):
    bench("run_unchanged.py", "--posts", "20", "--runs", "1", tmp_path=tmp_path)


def test_send_vs_smtplib(tmp_path):
    out = bench("send_vs_smtplib.py", "--subscribers", "20", "--posts", "3", "--runs", "1",
                tmp_path=tmp_path)
    assert "every run delivered 20 messages to the sink" in out


def test_send_memory(tmp_path):
    out = bench("send_memory.py", "--subscribers", "30", "--small", "10", tmp_path=tmp_path)
    assert "30 subscribers: peak RSS" in out


def test_scale(tmp_path):
    out = bench("scale.py", "--sizes", "10,30", "--runs", "1", tmp_path=tmp_path)
    assert len(RESULT.findall(out)) == 3
