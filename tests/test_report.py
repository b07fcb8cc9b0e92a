"""`metanmt report` from fixture evaluations: grouping, mean ± std, paired bootstrap p-values, files."""

from __future__ import annotations

import json
import logging
import random
import statistics

import pytest
from PIL import Image

from metanmt.cli import main
from metanmt.eval.evaluate import RESULT_KEYS, companion_paths
from metanmt.eval.files import write_lines_atomic, write_text_atomic
from metanmt.eval.metrics import corpus_scores
from metanmt.eval.report import build_report, find_evaluations, write_report

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "park", "mat", "house", "big", "small", "red",
         "green", "blue", "old", "new"]


def references(lang: str, split: str, n: int = 80) -> list[str]:
    rng = random.Random(f"{lang}/{split}")
    return [" ".join(rng.choices(WORDS, k=rng.randint(5, 12))) for _ in range(n)]


def write_eval(root, lang, split, system, tokens, draw, error_rate, refs=None, model_info=None):
    """A result file set as `metanmt evaluate` writes it, for a system with a given word error rate."""
    refs = refs if refs is not None else references(lang, split)
    rng = random.Random(f"{lang}/{split}/{system}/{tokens}/{draw}")
    hyps = [" ".join(w if rng.random() >= error_rate else rng.choice(WORDS) for w in r.split()) for r in refs]
    path = root / system / f"{tokens}" / f"draw{draw}" / f"{lang}.{split}.json"
    hyp_path, ref_path = companion_paths(path)
    write_lines_atomic(hyp_path, hyps)
    write_lines_atomic(ref_path, refs)
    scores = corpus_scores(hyps, refs)
    info = model_info if model_info is not None else {"system": system, "tokens": tokens, "draw": draw,
                                                      "lang": lang}
    result = {
        "lang": lang, "split": split, "bleu": scores.bleu, "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
        "num_sentences": len(refs), "beam": 4, "length_penalty": 0.6, "model": str(root / "ckpt"),
        "model_info": info, "hypotheses": hyp_path.name, "references": ref_path.name, "seconds": 1.0,
    }
    assert set(RESULT_KEYS) <= set(result)
    write_text_atomic(path, json.dumps(result))
    return result


@pytest.fixture
def runs(tmp_path):
    """fi: zero-shot + two sizes x 3 draws on `test`, one size on `test_flores`; tr: MetaNMT only."""
    root = tmp_path / "runs"
    bleu = {}
    for system, rates in (("metanmt", {0: 0.6, 4000: 0.3, 16000: 0.05}),
                          ("multinmt", {0: 0.6, 4000: 0.35, 16000: 0.5})):
        bleu[system, 0] = [write_eval(root, "fi", "test", system, 0, None, rates[0])["bleu"]]
        for tokens in (4000, 16000):
            bleu[system, tokens] = [
                write_eval(root, "fi", "test", system, tokens, d, rates[tokens])["bleu"] for d in range(3)
            ]
        write_eval(root, "fi", "test_flores", system, 4000, 0, rates[4000])
    write_eval(root, "tr", "test", "metanmt", 4000, 0, 0.3)
    return root, bleu


def table(report, lang, split):
    (t,) = [t for t in report["tables"] if (t["lang"], t["split"]) == (lang, split)]
    return t


def test_report_groups_averages_and_tests_significance(runs, tmp_path):
    root, bleu = runs
    out = tmp_path / "report"
    report = write_report(root, out, n_bootstrap=300)

    assert report["num_evaluations"] == 2 * 7 + 2 + 1
    assert [(t["lang"], t["split"]) for t in report["tables"]] == [
        ("fi", "test"), ("fi", "test_flores"), ("tr", "test")]
    fi = table(report, "fi", "test")
    assert fi["tokens"] == [0, 4000, 16000] and fi["systems"] == ["metanmt", "multinmt"]
    cells = {(c["system"], c["tokens"]): c for c in fi["cells"]}
    for key, values in bleu.items():
        assert cells[key]["bleu_mean"] == pytest.approx(statistics.fmean(values))
        assert cells[key]["n"] == len(values)
        std = pytest.approx(statistics.stdev(values)) if len(values) > 1 else None
        assert cells[key]["bleu_std"] == std
    assert cells["metanmt", 16000]["draws"] == [0, 1, 2] and cells["metanmt", 0]["draws"] == [None]

    tests = {t["tokens"]: t for t in fi["tests"]}
    assert sorted(tests) == [0, 4000, 16000]
    assert [d["draw"] for d in tests[16000]["draws"]] == [0, 1, 2]
    assert tests[16000]["bleu_p_max"] < 0.01  # 5% vs 50% word errors: always significant
    assert tests[16000]["bleu_p_max"] == max(d["bleu_p"] for d in tests[16000]["draws"])
    assert tests[0]["bleu_p_max"] > 0.05  # same error rate
    assert all(d["signature"].startswith("nrefs:1|bs:300|") for d in tests[16000]["draws"])
    for d in tests[16000]["draws"]:
        assert d["metanmt_bleu"] == pytest.approx(bleu["metanmt", 16000][d["draw"]])
        assert d["multinmt_bleu"] == pytest.approx(bleu["multinmt", 16000][d["draw"]])
    assert table(report, "tr", "test")["tests"] == []  # MultiNMT missing: nothing to compare
    assert report["warnings"] == []

    assert json.loads((out / "report.json").read_text()) == json.loads(json.dumps(report))
    md = (out / "report.md").read_text()
    assert md.index("## fi (Finnish) · test") < md.index("## fi (Finnish) · test_flores") < md.index("## tr")
    assert "| System | 0 (zero-shot) | 4,000 | 16,000 |" in md
    m, s = cells["metanmt", 16000]["bleu_mean"], cells["metanmt", 16000]["bleu_std"]
    assert f"{m:.1f} ± {s:.1f}" in md
    assert f"| {tests[16000]['bleu_p_max']:.3f} |" in md
    tr_section = md[md.index("## tr (Turkish)"):]
    assert "| MetaNMT | – |" in tr_section and "MultiNMT" not in tr_section.split("## Signatures")[0]
    assert "p (MetaNMT vs MultiNMT)" not in tr_section.split("## Signatures")[0]
    assert "- BLEU: `nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:" in md

    with Image.open(out / "bleu_vs_size.png") as img:
        assert img.format == "PNG"
        width, height = img.size
    assert width > height > 100  # two panels (fi, tr) side by side


def test_partial_and_foreign_files_do_not_break_the_report(tmp_path, caplog):
    root = tmp_path / "runs"
    write_eval(root, "fi", "test", "multinmt", 4000, 0, 0.3)
    write_eval(root, "fi", "test", "reptile-big", 4000, 0, 0.3,
               model_info={"system": "reptile-big", "tokens": 4000, "draw": 0})
    write_eval(root, "fi", "test", "metanmt", 4000, 0, 0.2)
    (root / "metanmt" / "4000" / "draw0" / "fi.test.hyp.txt").unlink()  # outputs lost: no paired test
    (root / "ckpt").mkdir()
    (root / "ckpt" / "config.json").write_text(json.dumps({"d_model": 64}))
    (root / "ckpt" / "broken.json").write_text("{not json")
    write_eval(root / "odd", "fi", "test", "metanmt", 4000, 0, 0.2, model_info={"draw": "first"})
    with caplog.at_level(logging.WARNING, logger="metanmt.eval.report"):
        found = find_evaluations(root)
    assert len(found) == 3 and "broken.json" in caplog.text and "malformed result" in caplog.text
    report = build_report(found, n_bootstrap=100)
    (fi,) = report["tables"]
    assert fi["systems"] == ["metanmt", "multinmt", "reptile-big"]
    ((draw,),) = [t["draws"] for t in fi["tests"]]
    assert "cannot read saved outputs" in draw["skipped"]
    assert fi["tests"][0]["bleu_p_max"] is None and len(report["warnings"]) == 1

    out = tmp_path / "out"
    assert main(["report", "--runs", str(root), "--output-dir", str(out), "--bootstrap-samples", "100"]) == 0
    md = (out / "report.md").read_text()
    assert "| reptile-big |" in md
    assert "| MetaNMT | – |" in md  # no zero-shot evaluation
    assert "| p (MetaNMT vs MultiNMT) | – | – |" in md
    assert "cannot read saved outputs" in md


def test_mismatched_references_and_duplicates_are_reported(tmp_path):
    root = tmp_path / "runs"
    write_eval(root, "fi", "test", "metanmt", 4000, 0, 0.2)
    write_eval(root, "fi", "test", "multinmt", 4000, 0, 0.2, refs=references("fi", "other"))
    first = write_eval(root / "again", "fi", "test", "metanmt", 4000, 0, 0.9)  # sorts before runs/metanmt
    report = build_report(find_evaluations(root), n_bootstrap=100)
    (fi,) = report["tables"]
    meta = next(c for c in fi["cells"] if c["system"] == "metanmt")
    assert meta["n"] == 1 and meta["bleu"] == [first["bleu"]]
    duplicate, mismatch = report["warnings"]
    assert duplicate.startswith(f"{root / 'metanmt'}") and "duplicates" in duplicate and "again" in duplicate
    assert "draw 0: no paired test, references differ" in mismatch
    assert fi["tests"][0]["bleu_p_max"] is None


def test_empty_runs_dir_and_missing_dir(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "bleu_vs_size.png").write_bytes(b"stale")
    report = write_report(tmp_path / "runs", out)
    assert report["tables"] == [] and report["plot"] is None
    assert not (out / "bleu_vs_size.png").exists()
    assert "No evaluation results found." in (out / "report.md").read_text()
    assert main(["report", "--runs", str(tmp_path / "nope"), "--output-dir", str(out)]) == 2
    assert "runs directory not found" in capsys.readouterr().err


def test_plot_falls_back_to_the_first_eval_split(tmp_path):
    """A setup without an in-domain `test` split (the paper recipe: official WMT sets) still gets its plot."""
    root = tmp_path / "runs"
    for system, rate in (("metanmt", 0.2), ("multinmt", 0.4)):
        for tokens in (0, 4000):
            write_eval(root, "fi", "test_wmt", system, tokens, 0, rate)
    report = write_report(root, tmp_path / "out", n_bootstrap=50)
    assert [t["split"] for t in report["tables"]] == ["test_wmt"]
    assert Image.open(tmp_path / "out" / "bleu_vs_size.png").size[0] > 100
