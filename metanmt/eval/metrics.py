"""Corpus BLEU, chrF, chrF++ and TER with sacrebleu (default settings, signatures kept) and sacrebleu's
paired bootstrap.

Scores are computed on detokenised text against one or more references per sentence, so they are
comparable with published sacrebleu numbers when the signatures match.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusScores:
    bleu: float
    chrf: float
    bleu_signature: str
    chrf_signature: str
    chrfpp: float  # chrF++ (character and word bigrams)
    ter: float  # translation edit rate: lower is better
    chrfpp_signature: str
    ter_signature: str


@dataclass(frozen=True)
class PairedBootstrap:
    """Paired bootstrap resampling (Koehn, 2004) of ``system`` against ``baseline`` on the same references.

    p-values are sacrebleu's: the probability of a score difference at least as large as the observed
    one under the null hypothesis that the systems are equally good.
    """

    baseline_bleu: float
    system_bleu: float
    bleu_p: float
    baseline_chrf: float
    system_chrf: float
    chrf_p: float
    n_samples: int
    signature: str  # the BLEU signature with the bootstrap's sample count and seed


def _check_lengths(references: Sequence[str], **hypotheses: Sequence[str]) -> None:
    if not references:
        raise ValueError("no references: cannot score an empty test set")
    for name, hyps in hypotheses.items():
        if len(hyps) != len(references):
            raise ValueError(f"{name} has {len(hyps)} lines but there are {len(references)} references")


def corpus_scores(hypotheses: Sequence[str], references: Sequence[str],
                  more_references: Sequence[Sequence[str]] = ()) -> CorpusScores:
    """sacrebleu corpus BLEU (13a tokenisation, exp smoothing), chrF2, chrF++ and TER with their signatures.

    ``more_references`` are further reference translations of the same sentences (multi-reference scoring).
    """
    from sacrebleu.metrics import BLEU, CHRF, TER

    _check_lengths(references, hypotheses=hypotheses)
    for number, refs in enumerate(more_references, start=2):
        _check_lengths(references, **{f"reference set {number}": refs})
    all_refs = [list(references), *map(list, more_references)]
    metrics = {"bleu": BLEU(), "chrf": CHRF(), "chrfpp": CHRF(word_order=2), "ter": TER()}
    scores = {name: float(m.corpus_score(list(hypotheses), all_refs).score) for name, m in metrics.items()}
    signatures = {f"{name}_signature": str(m.get_signature()) for name, m in metrics.items()}
    return CorpusScores(**scores, **signatures)


def paired_bootstrap(
    baseline: Sequence[str], system: Sequence[str], references: Sequence[str], n_samples: int = 1000
) -> PairedBootstrap:
    """sacrebleu's paired bootstrap test (``sacrebleu --paired-bs``) of ``system`` vs ``baseline``.

    The resampling seed is sacrebleu's (``SACREBLEU_SEED``, default 12345), so results are reproducible
    and the seed is part of the signature. Identical outputs get p = 1: sacrebleu's strict comparison of a
    zero difference against all-zero resampled differences would otherwise report p = 1/(n+1).
    """
    from sacrebleu.metrics import BLEU, CHRF
    from sacrebleu.significance import PairedTest

    _check_lengths(references, baseline=baseline, system=system)
    test = PairedTest(
        [("baseline", list(baseline)), ("system", list(system))],
        {"bleu": BLEU(), "chrf": CHRF()},
        references=[list(references)],
        test_type="bs",
        n_samples=n_samples,
    )
    signatures, results = test()
    # PairedTest re-keys the metrics by score name ("BLEU", "chrF2"), in the order they were given
    bleu_name, chrf_name = test.metrics
    (bl_bleu, sys_bleu), (bl_chrf, sys_chrf) = results[bleu_name], results[chrf_name]
    identical = list(baseline) == list(system)
    return PairedBootstrap(
        baseline_bleu=float(bl_bleu.score),
        system_bleu=float(sys_bleu.score),
        bleu_p=1.0 if identical else float(sys_bleu.p_value),
        baseline_chrf=float(bl_chrf.score),
        system_chrf=float(sys_chrf.score),
        chrf_p=1.0 if identical else float(sys_chrf.p_value),
        n_samples=test.n_samples,
        signature=signatures[bleu_name].format(),
    )
