"""The C ABI shipped in the package, exercised by a real C program."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import microexpr

REPO = Path(__file__).resolve().parents[1]
C_TEST = REPO / "cext" / "tests" / "test_cabi.c"


def test_header_and_library_are_installed():
    include_dir, lib_dir = microexpr.c_abi_paths()
    assert (include_dir / "microexpr.h").is_file()
    assert any(lib_dir.glob("libmicroexpr.*")), f"no libmicroexpr in {lib_dir}"


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler (cc) on PATH")
def test_c_program_against_installed_library(tmp_path):
    include_dir, lib_dir = microexpr.c_abi_paths()
    exe = tmp_path / "test_cabi"
    subprocess.run(
        ["cc", "-std=c99", "-O1", str(C_TEST), f"-I{include_dir}", f"-L{lib_dir}",
         f"-Wl,-rpath,{lib_dir}", "-lmicroexpr", "-lm", "-o", str(exe)],
        check=True,
    )
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert ", 0 failed" in result.stdout
