"""``microexpr bench`` on a tiny configuration, and the pieces it is made of.

No timing is asserted: only that every section ran and reported what its
documentation says, with consistent numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from microexpr.benchmark import (
    LATENCY_STAGES,
    SECTIONS,
    PerFrameStageTimes,
    _cpu_simd,
    main,
    machine_facts,
    tile_faces,
)
from microexpr.errors import ModelNotFoundError

TINY = ["--quick", "--quiet", "--frames", "6", "--sizes", "96", "--faces", "1", "2",
        "--resolutions", "320x240", "--clips", "1", "--clip-seconds", "2", "--repeats", "3",
        "--offline-seconds", "1.5"]


@pytest.fixture(scope="module")
def tiny_report(tmp_path_factory):
    from microexpr.landmarks import find_face_model

    try:
        find_face_model()
    except ModelNotFoundError as error:
        pytest.skip(f"no face landmark model installed: {error}")
    out = tmp_path_factory.mktemp("bench")
    assert main(TINY + ["--out", str(out)]) == 0
    return out


def test_bench_writes_json_and_markdown_with_the_documented_keys(tiny_report):
    report = json.loads((tiny_report / "bench.json").read_text())
    for key in SECTIONS + ("version", "quick", "settings", "date", "elapsed_s"):
        assert key in report, key
    assert report["quick"] is True and isinstance(report["version"], str)
    assert not any(isinstance(report[s], dict) and "skipped" in report[s] for s in SECTIONS)
    markdown = (tiny_report / "bench.md").read_text()
    for heading in ("## Machine", "## Streaming latency", "## Offline analysis speed",
                    "## Dense flow against OpenCV", "## Cost growth",
                    "## Accuracy on synthetic clips"):
        assert heading in markdown


def test_bench_offline_times_analyze_and_one_thread_on_the_same_clip(tiny_report):
    offline = json.loads((tiny_report / "bench.json").read_text())["offline"]
    assert offline["size"] == [640, 480] and offline["fps"] == 30.0
    assert offline["frames"] == 45 and offline["video_s"] == pytest.approx(1.5)
    for run in ("analyze", "one_thread"):
        r = offline[run]
        assert r["frames"] == 45
        assert r["wall_s"] > 0 and r["cpu_s"] > 0
        assert r["speed"] == pytest.approx(offline["video_s"] / r["wall_s"])
        assert r["frames_per_s"] == pytest.approx(45 / r["wall_s"])
    assert offline["target_speed"] == 1.5


def test_bench_latency_reports_every_stage_in_order(tiny_report):
    (latency,) = json.loads((tiny_report / "bench.json").read_text())["latency"]
    assert latency["size"] == [320, 240] and latency["faces"] == 1 and latency["frames"] == 6
    assert list(latency["stages"]) == list(LATENCY_STAGES)
    for stage, s in latency["stages"].items():
        assert 0 <= s["p50_ms"] <= s["p95_ms"] <= s["p99_ms"] and s["n"] == 6, stage
    assert latency["stages"]["landmarks"]["p50_ms"] > 0 and latency["stages"]["decode"]["p50_ms"] > 0
    assert latency["faces_tracked"] == 1.0
    assert latency["fps"] > 0 and latency["peak_rss_mib"] > 0


def test_bench_flow_scaling_and_accuracy_sections(tiny_report):
    report = json.loads((tiny_report / "bench.json").read_text())
    (rows,) = report["flow"]["tables"].values()
    methods = [r["method"] for r in rows]
    assert methods[:3] == ["microexpr fast", "microexpr balanced", "microexpr accurate"]
    assert "DIS medium" in methods and "Farneback" in methods
    medium = next(r for r in rows if r["method"] == "DIS medium")
    assert medium["time_vs_dis_medium"] == pytest.approx(1.0)
    assert medium["epe_vs_dis_medium"] == pytest.approx(1.0)
    # 96 px is outside target (a); target (b) gives two checks.
    assert [c["check"][:3] for c in report["flow"]["checks"]] == ["(b)", "(b)"]

    scaling = report["scaling"]
    assert [r["faces"] for r in scaling["core_vs_faces"]] == [1, 2]
    assert [r["crop"] for r in scaling["core_vs_crop"]] == [96]
    assert [r["found"] for r in scaling["landmarks_vs_faces"]] == [1, 2]

    accuracy = report["accuracy"]
    assert set(accuracy["scores"]) == {"microexpr", "mdmd", "lbp"}
    clip = accuracy["clips"][0]
    for scores in accuracy["scores"].values():
        overall = scores["overall"]
        assert overall["tp"] + overall["fn"] == clip["micro"] + clip["macro"]
        assert 0.0 <= overall["f1"] <= 1.0
    assert "| overall |" in accuracy["table"]


def test_per_frame_stage_times_sum_calls_per_frame():
    stages = PerFrameStageTimes()
    stages.add("landmarks", 0.010)
    stages.discard_frame()
    stages.add("alignment", 0.001)
    stages.add("alignment", 0.002)  # a second face
    stages.add("flow", 0.004)
    stages.add("regions", 0.001)
    stages.add("spotting", 0.0015)  # the analyzer already leaves flow and regions out
    stages.end_frame(decode=0.002, total=0.02)
    stages.end_frame(total=0.01)
    assert stages.samples["alignment"] == pytest.approx([0.003, 0.0])
    assert stages.samples["spotting"] == pytest.approx([0.0015, 0.0])
    assert stages.samples["landmarks"] == [0.0, 0.0]
    assert stages.samples["core"] == pytest.approx([0.008, 0.0])  # alignment + flow + regions
    summary = stages.summary()
    assert list(summary) == list(LATENCY_STAGES)
    assert summary["total"]["p50_ms"] == pytest.approx(15.0) and summary["total"]["n"] == 2


def test_tile_faces_fills_a_near_square_grid():
    images = [np.full((24, 32, 3), 50 * (k + 1), np.uint8) for k in range(4)]
    frame = tile_faces(images, (128, 96))
    assert frame.shape == (96, 128, 3) and frame.dtype == np.uint8
    # 2 x 2 cells of 64 x 48, each holding one image scaled by 2 exactly.
    assert frame[10, 10, 0] == 50 and frame[10, 100, 0] == 100 and frame[80, 10, 0] == 150
    assert frame[80, 100, 0] == 200
    three = tile_faces(images[:3], (96, 32))  # one row of three
    assert three[16, 16, 0] == 50 and three[16, 48, 0] == 100 and three[16, 80, 0] == 150


def test_machine_facts_and_cpu_flags():
    import microexpr._core

    facts = machine_facts()
    assert facts["simd_built"] == microexpr._core.simd
    assert facts["cores"] >= 1 and facts["versions"]["numpy"] == np.__version__
    assert _cpu_simd({"flags": "fpu sse4_2 avx2 bmi2"}) == ["sse4_2", "avx2"]
    assert _cpu_simd({"features": "fp asimd evtstrm"}) == ["asimd"]
    assert _cpu_simd({"flags": "fpu"}) == []


def test_bench_usage_errors(tmp_path, capsys):
    assert main(["--sizes", "64", "--out", str(tmp_path)]) == 2
    assert "--sizes must be in [96, 256]" in capsys.readouterr().err
    assert main(["--resolutions", "641x480"]) == 2
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["--out", str(blocker / "sub")]) == 1
    assert "cannot create" in capsys.readouterr().err
