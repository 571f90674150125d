"""The HTML evaluation report: plots only where there is data, the incumbent named, atomic."""

import os

import pytest

from lmops.evaluation import report
from lmops.evaluation.report import render_report, write_report

FULL = {
    "eval/perplexity": 30.0,
    "eval/perplexity_en": 20.0,
    "eval/perplexity_zh": 60.0,
    "safety/flagged_rate": 0.2,
    "safety/flagged_rate_violence": 0.3,
    "safety/flagged_rate_hate": 0.1,
    "bias/max_abs_gap": 0.25,
    "bias/mean_abs_gap_gender": 0.125,
}
COMPARISON = {
    "incumbent": {"name": "lmops-lm", "version": "41", "alias": "staging"},
    "eval_set": "ds-abc/tok-1",
    "metrics": {
        "eval/perplexity": {"candidate": 30.0, "incumbent": 33.0},
        "eval/rougeL": {"candidate": 0.2, "incumbent": float("nan")},
    },
}


def test_one_image_per_plot_with_data_and_the_incumbent_named():
    page = render_report(FULL, {}, COMPARISON, "Candidate")
    assert page.count("<img ") == 4
    for alt in (
        "Perplexity per language",
        "Red-team flagged rate per category",
        "Bias: mean absolute gap per category",
        "Candidate vs incumbent",
    ):
        assert f'<img alt="{alt}" src="data:image/png;base64,' in page
    assert "lmops-lm v41</b> (@staging)" in page and "ds-abc/tok-1" in page
    assert "incumbent v41" in page  # comparison table header
    assert "not drawn" not in page


def test_plots_without_data_are_notes_not_empty_figures():
    page = render_report({"eval/perplexity": 30.0, "bias/max_abs_gap": 0.2}, {}, None, "Bare")
    assert "<img " not in page
    assert page.count("not drawn") == 4
    assert "There is no incumbent" in page
    only_ppl = render_report({"eval/perplexity_en": 20.0}, {}, None, "One")
    assert only_ppl.count("<img ") == 1 and 'alt="Perplexity per language"' in only_ppl
    no_shared = {
        **COMPARISON,
        "metrics": {"eval/rougeL": {"candidate": 0.2, "incumbent": float("nan")}},
    }
    page = render_report({}, {}, no_shared, "No shared")
    assert "<img " not in page and "shares no finite metric" in page


def test_metrics_and_tables_are_listed_and_escaped():
    tables = {
        "eval_samples": [{"strategy": "greedy", "prompt": "<b>hi</b>", "completion": "x"}] * 25
    }
    page = render_report(FULL, tables, None, "T <script>")
    assert "<td>safety/flagged_rate_violence</td><td class=num>0.3</td>" in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
    assert "<title>T &lt;script&gt;</title>" in page
    assert f"Showing {report.MAX_TABLE_ROWS} of 25 rows" in page


def test_write_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "eval_report.html"
    moves = []
    real_replace = os.replace

    def spy(src, dst):
        moves.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(report.os, "replace", spy)
    write_report(target, FULL, {}, None, "First")
    assert "First" in target.read_text() and os.stat(target).st_mode & 0o777 == 0o644
    [(src, dst)] = moves
    assert os.path.dirname(src) == str(tmp_path) and dst == target  # rename within the folder

    def fail(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", fail)
    with pytest.raises(OSError):
        write_report(target, FULL, {}, None, "Second")
    assert "First" in target.read_text() and "Second" not in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["eval_report.html"]  # no temp file left
