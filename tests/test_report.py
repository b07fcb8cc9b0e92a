"""`metanmt report` from fixture evaluations: grouping, mean ± std, paired bootstrap p-values, the verdict,
training languages, sample translations, files."""

from __future__ import annotations

import json
import logging
import random
import statistics

import pytest
from PIL import Image

from metanmt.atomic import write_lines_atomic, write_text_atomic
from metanmt.cli import main
from metanmt.errors import MetaNMTError
from metanmt.eval.evaluate import RESULT_KEYS, companion_paths, sources_path
from metanmt.eval.metrics import corpus_scores
from metanmt.eval.report import build_report, find_evaluations, render_markdown, write_report
from metanmt.eval.verdict import compare

WORDS = ["the", "a", "cat", "dog", "sat", "ran", "on", "in", "park", "mat", "house", "big", "small", "red",
         "green", "blue", "old", "new"]


def references(lang: str, split: str, n: int = 80) -> list[str]:
    rng = random.Random(f"{lang}/{split}")
    return [" ".join(rng.choices(WORDS, k=rng.randint(5, 12))) for _ in range(n)]


def write_eval(root, lang, split, system, tokens, draw, error_rate, refs=None, model_info=None, gap=None,
               sources=True, group=None):
    """A result file set as `metanmt evaluate` writes it, for a system with a given word error rate.

    By default the checkpoint is a fine-tuned one (it has a base model); ``gap`` sets the source gap and
    ``sources=False`` leaves out the sources file, as results from before either was measured; ``group`` is
    the language's role (train/valid/test), absent by default as in results from before it was kept."""
    refs = refs if refs is not None else references(lang, split)
    rng = random.Random(f"{lang}/{split}/{system}/{tokens}/{draw}")
    hyps = [" ".join(w if rng.random() >= error_rate else rng.choice(WORDS) for w in r.split()) for r in refs]
    path = root / system / f"{tokens}" / f"draw{draw}" / f"{lang}.{split}.json"
    hyp_path, ref_path = companion_paths(path)
    write_lines_atomic(hyp_path, hyps)
    write_lines_atomic(ref_path, refs)
    scores = corpus_scores(hyps, refs)
    info = model_info if model_info is not None else {"system": system, "tokens": tokens, "draw": draw,
                                                      "lang": lang, "base_model": str(root / system)}
    result = {
        "lang": lang, "split": split, "bleu": scores.bleu, "chrf": scores.chrf,
        "bleu_signature": scores.bleu_signature, "chrf_signature": scores.chrf_signature,
        "num_sentences": len(refs), "beam": 4, "length_penalty": 0.6, "model": str(root / "ckpt"),
        "model_info": info, "hypotheses": hyp_path.name, "references": ref_path.name, "seconds": 1.0,
    }
    if group is not None:
        result["group"] = group
    if gap is not None:
        result["source_gap"] = {"loss": 3.0, "shuffled_loss": 3.0 + gap, "gap": gap}
    if sources:
        write_lines_atomic(sources_path(path), [f"{lang} source {i}" for i in range(len(refs))])
        result["sources"] = sources_path(path).name
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
    headings = ["### fi (Finnish) · test\n", "### fi (Finnish) · test_flores\n", "### tr (Turkish) · test\n"]
    assert [md.index(h) for h in headings] == sorted(md.index(h) for h in headings)
    assert "| System | 0 (zero-shot) | 4,000 | 16,000 |" in md
    m, s = cells["metanmt", 16000]["bleu_mean"], cells["metanmt", 16000]["bleu_std"]
    assert f"{m:.1f} ± {s:.1f}" in md
    assert f"| {tests[16000]['bleu_p_max']:.3f} |" in md
    tr_section = md[md.index("### tr (Turkish)"):]
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


def write_pipeline_runs(root, multi_dev_gap=1.5):
    """As the pipeline writes them: each trained model on three training languages' dev sets (MetaNMT's
    source gap 0.1 on average), and fine-tuned models on held-out languages, where MetaNMT wins fi/16k
    on both draws, MultiNMT wins tr/4k on both, and fi/4k is split: each system wins one draw."""
    for lang, gap in (("de", 0.05), ("fr", 0.1), ("es", 0.15)):
        for system, rate, system_gap in (("metanmt", 0.3, gap), ("multinmt", 0.5, multi_dev_gap)):
            write_eval(root, lang, "dev", system, 0, None, rate, gap=system_gap,
                       model_info={"system": system, "tokens": 1_000_000})  # trained, not fine-tuned
    for draw, (meta_rate, multi_rate) in enumerate(((0.05, 0.5), (0.5, 0.05))):
        write_eval(root, "fi", "test", "metanmt", 4000, draw, meta_rate, gap=1.0)
        write_eval(root, "fi", "test", "multinmt", 4000, draw, multi_rate, gap=2.0)
        write_eval(root, "fi", "test", "metanmt", 16000, draw, 0.05, gap=1.0 + draw)
        write_eval(root, "fi", "test", "multinmt", 16000, draw, 0.5)
        write_eval(root, "tr", "test", "metanmt", 4000, draw, 0.5)
        write_eval(root, "tr", "test", "multinmt", 4000, draw, 0.05)
    write_eval(root, "fi", "test_flores", "metanmt", 16000, 0, 0.05)
    write_eval(root, "fi", "test_flores", "multinmt", 16000, 0, 0.5)


def test_report_opens_with_the_verdict(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_pipeline_runs(root)
    report = write_report(root, out, n_bootstrap=100)
    verdict, md = report["verdict"], (out / "report.md").read_text()

    assert verdict["source_gap"]["metanmt"] == {"gap": pytest.approx(0.1), "n": 3, "basis": "dev"}
    assert verdict["source_gap"]["multinmt"] == {"gap": pytest.approx(1.5), "n": 3, "basis": "dev"}
    assert not verdict["neither_learned"] and "Neither system" not in md
    assert md.index("## Verdict") < md.index("|")  # before any table
    assert ("- MetaNMT has NOT learned to translate: source gap 0.10 nats < 0.5 (its outputs barely depend "
            "on the source; its BLEU is noise). Mean over its 3 training-language dev evaluations.") in md
    assert "- MultiNMT uses its source: source gap 1.50 nats (>= 0.5)." in md

    decisions = [(c["lang"], c["split"], c["tokens"], c["winner"]) for c in verdict["comparisons"]]
    assert decisions == [("fi", "test", 4000, None), ("fi", "test", 16000, "metanmt"),
                         ("tr", "test", 4000, "multinmt"), ("fi", "test_flores", 16000, "metanmt")]
    assert verdict["counts"] == {"cells": 4, "metanmt": 2, "multinmt": 1, "no_difference": 1, "not_tested": 0}
    assert verdict["pairs"] == [{k: verdict[k] for k in ("pair", "neither_learned", "comparisons", "counts")}]
    assert verdict["pair"] == ["metanmt", "multinmt"] and "MultiNMT+MetaNMT" not in md
    assert "MetaNMT better in 2 of 4 cells, MultiNMT better in 1, no significant difference in 1." in md
    mean = {(c["system"], c["tokens"]): c["bleu_mean"] for c in table(report, "fi", "test")["cells"]}
    fi_4k, fi_16k = verdict["comparisons"][:2]
    assert fi_16k["metanmt_bleu"] == pytest.approx(mean["metanmt", 16000])
    assert fi_16k["multinmt_bleu"] == pytest.approx(mean["multinmt", 16000])
    split_draws = table(report, "fi", "test")["tests"][0]["draws"]
    assert all(d["bleu_p"] < 0.05 for d in split_draws)  # each draw significant, but not the same way
    assert [d["metanmt_bleu"] > d["multinmt_bleu"] for d in split_draws] == [True, False]
    assert (f"| fi (Finnish) · test | no significant difference ({fi_4k['metanmt_bleu']:.1f} vs "
            f"{fi_4k['multinmt_bleu']:.1f}) | MetaNMT better ({fi_16k['metanmt_bleu']:.1f} vs "
            f"{fi_16k['multinmt_bleu']:.1f}) |") in md
    assert md.index("| fi (Finnish) · test |") < md.index("| tr (Turkish) · test |") < md.index(
        "| fi (Finnish) · test_flores |")


def test_training_languages_are_a_table_of_their_own(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_pipeline_runs(root)
    report = write_report(root, out, n_bootstrap=20)
    md = (out / "report.md").read_text()

    assert [(t["lang"], t["split"]) for t in report["tables"]] == [
        ("fi", "test"), ("fi", "test_flores"), ("tr", "test")]  # no fine-tuning tables for dev sets
    with Image.open(out / "bleu_vs_size.png") as img:
        assert img.size == (2 * 504, 408)  # two panels (fi, tr) of 4.2 x 3.4 inches at 120 dpi
    training = report["training_languages"]
    assert [row["lang"] for row in training["rows"]] == ["de", "es", "fr"]
    dev = {(e.lang, e.system): e for e in find_evaluations(root) if e.split == "dev"}
    mean = {s: {k: statistics.fmean(getattr(dev[lang, s], k) for lang in ("de", "es", "fr"))
                for k in ("bleu", "chrf", "gap")} for s in ("metanmt", "multinmt")}
    assert training["mean"]["metanmt"] == {"bleu": pytest.approx(mean["metanmt"]["bleu"]),
                                           "chrf": pytest.approx(mean["metanmt"]["chrf"]),
                                           "source_gap": pytest.approx(0.1), "n": 3}
    section = md[md.index("## Training languages"):md.index("## Sample translations")]
    assert ("| Language | MetaNMT BLEU | MultiNMT BLEU | MetaNMT chrF | MultiNMT chrF | MetaNMT source gap "
            "| MultiNMT source gap |") in section
    m, u = mean["metanmt"], mean["multinmt"]
    assert (f"| **Mean** | {m['bleu']:.1f} | {u['bleu']:.1f} | {m['chrf']:.1f} | {u['chrf']:.1f} | 0.10 "
            f"| 1.50 |") in section
    assert f"| de (German) | {dev['de', 'metanmt'].bleu:.1f} | {dev['de', 'multinmt'].bleu:.1f} |" in section
    assert "de (German)" not in md[md.index("## Held-out languages"):]


def test_samples_gaps_per_cell_and_relative_paths(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_pipeline_runs(root)
    report = write_report(root, out, n_bootstrap=20)
    md = (out / "report.md").read_text()

    samples = report["samples"]
    assert (samples["lang"], samples["split"], samples["tokens"], samples["draw"]) == ("fi", "test", 16000, 0)
    draw0 = {s: root / s / "16000" / "draw0" for s in ("metanmt", "multinmt")}
    refs = references("fi", "test")[:5]
    meta = (draw0["metanmt"] / "fi.test.hyp.txt").read_text().splitlines()[:5]
    multi = (draw0["multinmt"] / "fi.test.hyp.txt").read_text().splitlines()[:5]
    assert samples["sentences"] == [
        {"source": f"fi source {i}", "reference": refs[i], "metanmt": meta[i], "multinmt": multi[i]}
        for i in range(5)]
    assert meta != multi
    section = md[md.index("## Sample translations"):md.index("## Held-out languages")]
    assert "fi (Finnish) · test, fine-tuned on 16,000 tokens, draw 0." in section
    assert (f"**5.**\n\n- Source: fi source 4\n- Reference: {refs[4]}\n- MetaNMT: {meta[4]}\n"
            f"- MultiNMT: {multi[4]}\n") in section

    cells = {(c["system"], c["tokens"]): c for c in table(report, "fi", "test")["cells"]}
    assert cells["metanmt", 16000]["source_gap"] == [1.0, 2.0]
    assert cells["metanmt", 16000]["source_gap_mean"] == pytest.approx(1.5)
    assert cells["multinmt", 16000]["source_gap"] == [None, None]
    assert cells["multinmt", 16000]["source_gap_mean"] is None
    assert ("Source gap (nats per token, mean over draws; sizes as in the columns): "
            "MetaNMT – · 1.00 · 1.50; MultiNMT – · 2.00 · –.") in md

    text = (out / "report.json").read_text()
    assert str(tmp_path) not in text and str(tmp_path) not in md
    assert report["runs_dir"] == "../runs" and "from `../runs`" in md
    files = [f for t in report["tables"] for c in t["cells"] for f in c["files"]]
    assert files and all((out / f).resolve().is_file() for f in files)
    assert cells["metanmt", 16000]["files"] == ["../runs/metanmt/16000/draw0/fi.test.json",
                                                "../runs/metanmt/16000/draw1/fi.test.json"]


def test_verdict_when_neither_system_learned(tmp_path):
    root = tmp_path / "runs"
    write_pipeline_runs(root, multi_dev_gap=0.2)
    report = build_report(find_evaluations(root), n_bootstrap=20)
    md = render_markdown(report, "runs", None)
    assert report["verdict"]["neither_learned"]
    assert report["verdict"]["source_gap"]["multinmt"]["gap"] == pytest.approx(0.2)
    assert "- MultiNMT has NOT learned to translate: source gap 0.20 nats < 0.5" in md
    assert ("**Neither system has learned to translate** (both source gaps < 0.5 nats): the MetaNMT vs "
            "MultiNMT comparison below means nothing.") in md
    assert md.index("Neither system") < md.index("|")


def test_verdict_falls_back_to_all_evaluations_without_dev_results(tmp_path):
    """Older runs: no training-language results, source gaps only on some evaluations, no sources file."""
    root = tmp_path / "runs"
    for draw, gap in enumerate((0.2, 0.4)):
        write_eval(root, "fi", "test", "metanmt", 4000, draw, 0.2, gap=gap, sources=False)
        write_eval(root, "fi", "test", "multinmt", 4000, draw, 0.3, sources=False)
    report = build_report(find_evaluations(root), n_bootstrap=20)
    md = render_markdown(report, "runs", None)
    gaps = report["verdict"]["source_gap"]
    assert gaps["metanmt"] == {"gap": pytest.approx(0.3), "n": 2, "basis": "all"}
    assert gaps["multinmt"] == {"gap": None, "n": 0, "basis": "all"}
    assert not report["verdict"]["neither_learned"]  # MultiNMT was not measured
    assert ("- MetaNMT has NOT learned to translate: source gap 0.30 nats < 0.5 (its outputs barely depend "
            "on the source; its BLEU is noise). Mean over all 2 of its evaluations (none on a training "
            "language's dev set).") in md
    assert "- MultiNMT: no source-gap measurement.\n" in md
    assert report["training_languages"]["rows"] == [] and "## Training languages" not in md
    assert [s["source"] for s in report["samples"]["sentences"]] == [None] * 5
    assert "- Source: –\n" in md


def paired(*draws):
    """A report `tests` entry from (MetaNMT BLEU, MultiNMT BLEU, p) per draw; None for a skipped draw."""
    return {"tokens": 4000, "draws": [
        {"draw": i, "skipped": "lost"} if d is None
        else {"draw": i, "metanmt_bleu": d[0], "multinmt_bleu": d[1], "bleu_p": d[2]}
        for i, d in enumerate(draws)]}


@pytest.mark.parametrize("draws, winner", [
    (((20.0, 10.0, 0.01), (18.0, 12.0, 0.04)), "metanmt"),  # ahead and significant on every draw
    (((10.0, 20.0, 0.001), (11.0, 12.0, 0.03)), "multinmt"),
    (((20.0, 10.0, 0.01), (18.0, 17.0, 0.2)), None),  # one draw not significant
    (((30.0, 10.0, 0.001), (12.0, 14.0, 0.01)), None),  # higher mean, but behind (significantly) on a draw
    (((20.0, 10.0, 0.01), None), None),  # a draw that could not be tested does not count as a win
])
def test_a_system_is_better_only_on_every_draw(draws, winner):
    decision = compare(paired(*draws), "metanmt", "multinmt")
    done = [d for d in draws if d is not None]
    assert decision == {"tokens": 4000, "tested": True, "winner": winner,
                        "metanmt_bleu": pytest.approx(statistics.fmean(d[0] for d in done)),
                        "multinmt_bleu": pytest.approx(statistics.fmean(d[1] for d in done))}


def test_a_cell_without_any_tested_draw_is_not_tested():
    assert compare(paired(None), "metanmt", "multinmt") == {
        "tokens": 4000, "tested": False, "winner": None, "metanmt_bleu": None, "multinmt_bleu": None}


def write_training_run(root, system, records):
    root.mkdir(parents=True)
    (root / "run.json").write_text(json.dumps({"system": system}))
    lines = [{"step": 1, "tokens": 10, "loss": 9.0}]  # a step without validation: not a curve point
    lines += [{"step": s, "tokens": t, "loss": 5.0, "valid_bleu": {"mean": b, "chrf_mean": 10.0},
               "source_gap": {"gap": g}} for s, t, b, g in records]
    (root / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def test_training_curves_and_quality_line(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_pipeline_runs(root)
    write_training_run(tmp_path / "meta", "metanmt", [(2, 1_000_000, 0.5, 0.1), (4, 2_000_000, 3.0, 1.2)])
    write_training_run(tmp_path / "multi", "multinmt", [(2, 1_000_000, 1.0, 0.3)])
    report = write_report(root, out, n_bootstrap=20, train_runs=[tmp_path / "meta", tmp_path / "multi"])
    md = (out / "report.md").read_text()
    assert [r["tokens"] for r in report["training_curves"]["metanmt"]] == [1_000_000, 2_000_000]
    assert report["training_curves"]["multinmt"][0]["source_gap"] == 0.3
    assert report["curves_plot"] == "training_curves.png" and (out / "training_curves.png").is_file()
    assert "| MetaNMT | 2,000,000 | 3.00 | 1.20 |" in md and "| MultiNMT | 1,000,000 | 1.00 | 0.30 |" in md
    means = report["training_languages"]["mean"]
    assert ("Mean dev BLEU over the training languages (no fine-tuning): MetaNMT "
            f"{means['metanmt']['bleu']:.1f}, "
            f"MultiNMT {means['multinmt']['bleu']:.1f}.") in md


def test_training_curves_need_a_run_directory(tmp_path):
    from metanmt.eval.curves import read_training_runs

    with pytest.raises(MetaNMTError, match="not a training run directory"):
        read_training_runs([tmp_path])


THREE = ("metanmt", "multinmt", "multimeta")
CELLS = (("fi", 4000), ("fi", 16000), ("tr", 4000))


def write_three_systems(root, systems=THREE):
    """Two draws per held-out cell: MetaNMT (5% word errors) beats MultiNMT (30%) everywhere; MultiNMT+MetaNMT
    beats it on fi (5%) and loses on tr (70%). Each system also on a training language's dev set."""
    rates = {"metanmt": {"fi": 0.05, "tr": 0.05}, "multinmt": {"fi": 0.3, "tr": 0.3},
             "multimeta": {"fi": 0.05, "tr": 0.7}}
    gaps = {"metanmt": 1.0, "multinmt": 2.0, "multimeta": 1.5}
    for system in systems:
        for (lang, tokens), draw in ((cell, d) for cell in CELLS for d in range(2)):
            write_eval(root, lang, "test", system, tokens, draw, rates[system][lang], gap=gaps[system])
        write_eval(root, "de", "dev", system, 0, None, 0.3, gap=gaps[system],
                   model_info={"system": system, "tokens": 1_000_000})


def test_every_other_system_is_compared_with_the_baseline(tmp_path):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_three_systems(root)
    for system, gap in zip(THREE, (1.2, 0.3, 0.8), strict=True):
        write_training_run(tmp_path / system, system, [(2, 1_000_000, 2.0, gap)])
    report = write_report(root, out, n_bootstrap=100, train_runs=[tmp_path / s for s in THREE])
    verdict, md = report["verdict"], (out / "report.md").read_text()

    main, other = verdict["pairs"]
    assert main == {k: verdict[k] for k in ("pair", "neither_learned", "comparisons", "counts")}
    assert (main["pair"], other["pair"]) == (["metanmt", "multinmt"], ["multimeta", "multinmt"])
    assert main["counts"] == {"cells": 3, "metanmt": 3, "multinmt": 0, "no_difference": 0, "not_tested": 0}
    assert other["counts"] == {"cells": 3, "multimeta": 2, "multinmt": 1, "no_difference": 0, "not_tested": 0}
    assert [(c["lang"], c["tokens"], c["winner"]) for c in other["comparisons"]] == [
        ("fi", 4000, "multimeta"), ("fi", 16000, "multimeta"), ("tr", 4000, "multinmt")]
    fi = table(report, "fi", "test")
    assert fi["systems"] == ["metanmt", "multinmt", "multimeta"]
    assert [(t["pair"], t["tokens"]) for t in fi["tests"]] == [
        (["metanmt", "multinmt"], 4000), (["metanmt", "multinmt"], 16000),
        (["multimeta", "multinmt"], 4000), (["multimeta", "multinmt"], 16000)]
    for d in (d for t in fi["tests"] if t["pair"][0] == "multimeta" for d in t["draws"]):
        assert d["bleu_p"] < 0.05 and d["multimeta_bleu"] > d["multinmt_bleu"]

    first = md.index("MetaNMT better in 3 of 3 cells, MultiNMT better in 0, no significant difference in 0.")
    assert first < md.index("**MultiNMT+MetaNMT vs MultiNMT**: MultiNMT+MetaNMT better in 2 of 3 cells, "
                            "MultiNMT better in 1, no significant difference in 0.") < md.index("## Training")
    tr = other["comparisons"][2]
    assert (f"| tr (Turkish) · test | MultiNMT better ({tr['multimeta_bleu']:.1f} vs "
            f"{tr['multinmt_bleu']:.1f}) |") in md
    assert "| p (MetaNMT vs MultiNMT) | – |" in md and "| p (MultiNMT+MetaNMT vs MultiNMT) | – |" in md
    assert ("Source gap (nats per token, mean over draws; sizes as in the columns): MetaNMT – · 1.00 · 1.00; "
            "MultiNMT – · 2.00 · 2.00; MultiNMT+MetaNMT – · 1.50 · 1.50.") in md
    assert "| Language | MetaNMT BLEU | MultiNMT BLEU | MultiNMT+MetaNMT BLEU | MetaNMT chrF |" in md
    assert "| MultiNMT+MetaNMT | 1,000,000 | 2.00 | 0.80 |" in md


def test_samples_show_every_system(tmp_path):
    root = tmp_path / "runs"
    write_three_systems(root)
    report = build_report(find_evaluations(root), n_bootstrap=20)
    md = render_markdown(report, "runs", None)
    samples = report["samples"]
    assert (samples["lang"], samples["tokens"], samples["draw"]) == ("fi", 16000, 0)
    assert samples["systems"] == list(THREE)
    hyps = {s: (root / s / "16000" / "draw0" / "fi.test.hyp.txt").read_text().splitlines()[:5] for s in THREE}
    assert samples["sentences"][0] == {"source": "fi source 0", "reference": references("fi", "test")[0],
                                       **{s: hyps[s][0] for s in THREE}}
    assert (f"- MetaNMT: {hyps['metanmt'][4]}\n- MultiNMT: {hyps['multinmt'][4]}\n"
            f"- MultiNMT+MetaNMT: {hyps['multimeta'][4]}\n") in md


@pytest.mark.parametrize("systems, pairs", [
    (("metanmt", "multimeta"), []),  # no baseline: nothing to compare
    (("multinmt", "multimeta"), [["multimeta", "multinmt"]]),  # no MetaNMT: only the other pair
])
def test_pairs_need_both_systems(tmp_path, systems, pairs):
    root, out = tmp_path / "runs", tmp_path / "report"
    write_three_systems(root, systems)
    report = write_report(root, out, n_bootstrap=20)
    verdict, md = report["verdict"], (out / "report.md").read_text()
    assert [b["pair"] for b in verdict["pairs"]] == pairs
    assert verdict["comparisons"] == [] and verdict["counts"]["cells"] == 0
    assert "No held-out cell has both MetaNMT and MultiNMT evaluations: nothing to compare." in md
    assert ("**MultiNMT+MetaNMT vs MultiNMT**: MultiNMT+MetaNMT better in 2 of 3 cells" in md) == bool(pairs)
    assert all(t["pair"] == ["multimeta", "multinmt"] for tb in report["tables"] for t in tb["tests"])
    assert report["samples"]["systems"] == list(systems) and report["warnings"] == []


def test_validation_languages_are_reported_apart_from_the_verdict(tmp_path):
    """ro is a validation language (the fine-tuning rate was chosen on it): its cells, where MetaNMT is far
    better, get tables of their own and never count in the verdict; fi (test) does."""
    root, out = tmp_path / "runs", tmp_path / "report"
    for system, fi_rate, ro_rate in (("metanmt", 0.3, 0.05), ("multinmt", 0.3, 0.7)):
        for d in range(3):
            write_eval(root, "fi", "test", system, 4000, d, fi_rate, group="test")
            write_eval(root, "ro", "test", system, 4000, d, ro_rate, group="valid")
        write_eval(root, "ro", "dev", system, 0, None, ro_rate, group="valid")  # not a training language
    report = write_report(root, out, n_bootstrap=50)
    md = (out / "report.md").read_text()

    assert [(t["lang"], t["split"]) for t in report["tables"]] == [("fi", "test")]
    assert [(t["lang"], t["split"]) for t in report["validation_tables"]] == [("ro", "test"), ("ro", "dev")]
    ro = report["validation_tables"][0]
    assert {c["system"]: round(c["bleu_mean"]) for c in ro["cells"]}["metanmt"] > 60
    assert [(c["lang"], c["winner"]) for c in report["verdict"]["comparisons"]] == [("fi", None)]
    assert report["verdict"]["counts"] == {"cells": 1, "metanmt": 0, "multinmt": 0, "no_difference": 1,
                                           "not_tested": 0}
    assert report["training_languages"]["rows"] == []
    validation = md[md.index("## Validation languages"):md.index("## Signatures")]
    assert "ro: the fine-tuning settings were chosen on these languages" in validation
    assert "### ro (Romanian) · test" in validation and "### ro (Romanian) · dev" in validation
    assert "ro (Romanian)" not in md[:md.index("## Validation languages")]
    with Image.open(out / "bleu_vs_size.png") as img:
        assert img.size == (504, 408)  # one panel: fi
