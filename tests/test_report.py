"""The report builds from a tiny fixture and is self-contained (every image inlined, no links out)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from fusionseg.bootstrap.filters import Stage
from fusionseg.bootstrap.report import funnel_row, funnel_table, quality_table
from fusionseg.cli import main
from fusionseg.io import write_image, write_mask


def square(top: int, left: int) -> np.ndarray:
    mask = np.zeros((24, 32), dtype=bool)
    mask[top : top + 8, left : left + 10] = True
    return mask


def make_fixture(root):
    davis = root / "davis"
    for i in range(5):
        write_image(davis / "JPEGImages" / "480p" / "clip" / f"{i:05d}.jpg", np.full((24, 32, 3), 40 * i, np.uint8))
        write_mask(davis / "Annotations" / "480p" / "clip" / f"{i:05d}.png", square(6, 5 + i))
        write_image(root / "flow_rgb" / "davis" / "clip" / f"{i:05d}.png", np.full((24, 32, 3), 200, np.uint8))
        for method, shift in (("appearance", 1), ("motion", 2), ("joint", 0)):
            write_mask(root / "masks" / method / "davis" / "clip" / f"{i:05d}.png", square(6, 5 + i + shift))
    bench = root / "bench" / "compute_flow"
    bench.mkdir(parents=True)
    (bench / "davis-clip.tsv").write_text("s\th:m:s\tmax_rss\tmax_vms\n3.5\t0:00:03\t210.5\t800\n")
    funnel_table([funnel_row("davis", "clip", [Stage.NO_BOX, Stage.KEPT])]).to_csv(root / "funnel.csv", index=False)
    quality_table([{"dataset": "davis", "sequence": "clip", "j_before": 0.70, "j_after": 0.78, "kept": True}]).to_csv(
        root / "quality.csv", index=False
    )
    pd.DataFrame(
        {"role": ["benchmark", "fusion_train"], "dataset": ["davis", "davis"], "sequence": ["clip", "clip"]}
    ).to_csv(root / "roles.csv", index=False)
    return davis


def test_report_is_self_contained_and_has_every_section(tmp_path):
    davis = make_fixture(tmp_path)
    scores = []
    for method in ("appearance", "motion", "joint"):
        out = tmp_path / "scores" / f"{method}.csv"
        args = ["score", "--pred", str(tmp_path / "masks" / method / "davis"), "--gt", str(davis), "--out", str(out)]
        assert main(args + ["--method", method, "--dataset", "davis"]) == 0
        scores.append(str(out))
    assert main(["summarize", "--scores", *scores, "--out", str(tmp_path / "summary.csv")]) == 0
    report = tmp_path / "report.html"
    args = [
        "report", "--summary", str(tmp_path / "summary.csv"), "--scores", *scores,
        "--frames-root", f"davis={davis}", "--flow-rgb-root", str(tmp_path / "flow_rgb"),
        "--masks-root", str(tmp_path / "masks"), "--funnel", str(tmp_path / "funnel.csv"),
        "--quality", str(tmp_path / "quality.csv"), "--benchmarks", str(tmp_path / "bench"),
        "--roles", str(tmp_path / "roles.csv"), "--overlay-frames", "3", "--out", str(report),
    ]
    assert main(args) == 0
    text = report.read_text()
    assert not re.search(r"(https?:|file:)", text)
    sources = re.findall(r'src="([^"]*)"', text)
    assert sources and all(s.startswith("data:image/") for s in sources)
    assert "<link" not in text and "<script" not in text
    for heading in ("Summary", "Per-sequence scores", "Overlays", "Bootstrapped pseudo labels",
                    "Sequences and roles", "Time and memory per rule"):
        assert f">{heading}</h2>" in text
    assert text.index("Ours-A") < text.index("Ours-M") < text.index("Ours-Joint")
    # one bar chart + 3 frames x 6 panels (frame, flow, A, M, Joint, ground truth)
    assert len(sources) == 1 + 3 * 6
    assert "compute_flow" in text and "fusion_train" in text


def test_report_needs_only_the_summary_and_names_missing_files(tmp_path, capsys):
    summary = tmp_path / "summary.csv"
    pd.DataFrame({"method": ["Ours-Joint"], "method_id": ["joint"], "davis J": [0.7]}).to_csv(summary, index=False)
    assert main(["report", "--summary", str(summary), "--out", str(tmp_path / "r.html")]) == 0
    assert "70.0" in (tmp_path / "r.html").read_text()
    missing = tmp_path / "nope.csv"
    assert main(["report", "--summary", str(summary), "--funnel", str(missing), "--out", str(tmp_path / "s.html")]) == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not (tmp_path / "s.html").exists()
