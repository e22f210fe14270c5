"""Offline spoken data: TTS backends, text cleaning, corpus (held-out voices, resume), benchmarks."""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from twistlm.eval.readers import read_benchmark
from twistlm.synth import tts
from twistlm.synth.lexicon import edit_distance, make_word_pairs
from twistlm.synth.templates import PHENOMENA, make_sentence_pairs, make_stories
from twistlm.synth.text import clean_passage, load_utterances, split_utterances

TRAIN = ["flite:awb", "espeak-ng:us-m3"]
HELDOUT = ["flite:kal16", "espeak-ng:us-f3"]


def _need(*voices):
    missing = [v for v in voices if not tts.is_available(v)]
    if missing:
        pytest.skip(f"TTS not installed: {missing}")


@pytest.mark.tts
@pytest.mark.parametrize("voice", list(tts.VOICES))
def test_backend_output_is_16k_nonsilent_plausible(voice, tmp_path):
    _need(voice)
    text = "The old man walked slowly to the station in the rain."  # 11 words
    secs = tts.synthesize_to_file(voice, text, tmp_path / "x.wav")
    info = sf.info(str(tmp_path / "x.wav"))
    assert info.samplerate == 16000 and info.channels == 1
    wav, _ = sf.read(str(tmp_path / "x.wav"), dtype="float32")
    assert np.sqrt(np.mean(wav**2)) > 0.01  # not silent
    assert 1.5 < secs < 8.0 and secs == pytest.approx(len(wav) / 16000)


@pytest.mark.tts
def test_espeak_library_route_matches_binary_rate():
    if tts.espeak_lib_paths() is None:
        pytest.skip("espeakng-loader not installed")
    lib = tts.espeak_lib()
    wav = lib.synth(tts.VOICES["espeak-ng:us-f3"], "hello there, how are you today")
    assert lib.sample_rate == 22050 and 0.8 < len(wav) / lib.sample_rate < 4
    assert np.abs(wav).max() > 0.05


def test_missing_voice_errors_with_install_hint(monkeypatch):
    monkeypatch.setattr(tts, "is_available", lambda name: False)
    with pytest.raises(tts.TTSError, match="apt-get install flite"):
        tts.resolve_voices(["flite:kal16"])
    with pytest.raises(tts.TTSError, match="unknown voice"):
        tts.get_voice("flite:nobody")


def test_clean_and_split():
    raw = (
        "A clash of doctrine is not a disaster (1) -- it is an opportunity.\n\t\t-- A. Whitehead\n"
    )
    assert clean_passage(raw) == "A clash of doctrine is not a disaster, it is an opportunity."
    assert clean_passage("  |__|  /\\/\\ ###  ***  \n ++++ ====") is None
    long = " ".join(f"Sentence number {i} has a few more words in it." for i in range(20))
    parts = split_utterances(long, 8, 38)
    assert all(8 <= len(p.split()) <= 38 for p in parts)
    assert " ".join(parts).split() == long.split()  # nothing lost, order kept
    a = load_utterances("generator", seed=3)
    assert a == load_utterances("generator", seed=3) and a != load_utterances("generator", seed=4)


@pytest.mark.tts
def test_corpus_uses_train_voices_only_and_resumes(tmp_path):
    from twistlm.synth.corpus import read_manifest, synthesize_corpus

    _need(*TRAIN)
    s = synthesize_corpus(
        tmp_path, hours=0.004, voices=TRAIN, heldout_voices=HELDOUT, text_source="generator"
    )
    rows = read_manifest(tmp_path)
    assert s.n_utterances == len(rows) >= 3 and s.n_failed == 0
    assert {r["voice"] for r in rows} <= set(TRAIN)
    assert not {r["voice"] for r in rows} & set(HELDOUT)
    assert sum(r["seconds"] for r in rows) >= 0.99 * 0.004 * 3600
    for r in rows:
        assert sf.info(r["path"]).samplerate == 16000
        assert r["seconds"] == pytest.approx(sf.info(r["path"]).duration, abs=1e-3)
    # resume: existing wavs are kept untouched, a deleted one is redone
    mtimes = {r["path"]: Path(r["path"]).stat().st_mtime_ns for r in rows}
    Path(rows[0]["path"]).unlink()
    s2 = synthesize_corpus(
        tmp_path, hours=0.004, voices=TRAIN, heldout_voices=HELDOUT, text_source="generator"
    )
    rows2 = read_manifest(tmp_path)
    assert [r["text"] for r in rows2] == [r["text"] for r in rows] and s2.n_utterances == len(rows)
    assert Path(rows[0]["path"]).is_file()
    assert all(Path(p).stat().st_mtime_ns == m for p, m in list(mtimes.items())[1:])
    with pytest.raises(tts.TTSError, match="both training and held-out"):
        synthesize_corpus(tmp_path, hours=0.01, voices=HELDOUT[:1], heldout_voices=HELDOUT)


def _assert_minimal_pair(p):
    """One word substituted, or (word order) two adjacent words swapped."""
    g, b = p.good.split(), p.bad.split()
    assert len(g) == len(b) and g != b, (p.good, p.bad)
    diff = [i for i in range(len(g)) if g[i] != b[i]]
    if p.type == "word_order":
        assert len(diff) == 2 and diff[1] == diff[0] + 1, (p.good, p.bad)
        assert (g[diff[0]], g[diff[1]]) == (b[diff[1]], b[diff[0]])
    else:
        assert len(diff) == 1, (p.good, p.bad)


def test_sblimp_pairs_differ_in_one_word_or_one_adjacent_swap():
    pairs = make_sentence_pairs(len(PHENOMENA) * 6, seed=1)
    assert {(p.type, p.subtype) for p in pairs} == set(PHENOMENA)
    for p in pairs:
        _assert_minimal_pair(p)


def test_sblimp_templates_give_thousands_of_distinct_pairs():
    pairs = make_sentence_pairs(3000, seed=0)
    assert len(pairs) == 3000 and len({p.good for p in pairs}) == 3000
    per = Counter((p.type, p.subtype) for p in pairs)
    assert set(per) == set(PHENOMENA) and min(per.values()) >= 3000 // len(PHENOMENA)
    for p in pairs:
        _assert_minimal_pair(p)
    assert pairs[:50] == make_sentence_pairs(50, seed=0)  # deterministic, prefix-stable


def test_stories_share_context_and_endings_differ():
    stories = make_stories(24, seed=0)
    assert len({s.context for s in stories}) == 24
    for s in stories:
        assert s.ending not in (s.contradiction, s.wrong_person)
        assert len(s.context.split(". ")) == 4


def test_word_pairs_are_phoneme_edits_of_real_words():
    vocab = Counter(
        w for u in load_utterances("generator", seed=0) for w in re.findall(r"\b[a-z]+\b", u)
    )
    pairs = make_word_pairs(vocab, 12, seed=0)
    assert len(pairs) == 12 and pairs == make_word_pairs(vocab, 12, seed=0)
    for p in pairs:
        assert p.word in vocab and p.non_word not in vocab and p.frequency == vocab[p.word]
        if p.phones:  # espeak-ng installed: one or two phoneme edits
            assert 1 <= edit_distance(p.phones.split(), p.non_word_phones.split()) <= 2


def test_templates_deterministic():
    assert make_sentence_pairs(30, 5) == make_sentence_pairs(30, 5)
    assert make_sentence_pairs(30, 5) != make_sentence_pairs(30, 6)
    assert make_stories(10, 5) == make_stories(10, 5)


@pytest.mark.tts
def test_benchmarks_layouts_parse_with_readers(tmp_path):
    from twistlm.synth.benchmarks import synthesize_benchmarks

    _need(*HELDOUT)
    n = 6
    s = synthesize_benchmarks(tmp_path, n_pairs=n, voices=HELDOUT, text_source="generator")
    assert s.n_pairs == {"swuggy": n, "sblimp": n, "ssc": n, "tsc": n} and s.n_failed == 0
    heldout_slugs = {tts.voice_slug(v) for v in HELDOUT}
    for kind, sub in (("swuggy", "lexical/dev"), ("sblimp", "syntactic/dev")):
        official = read_benchmark(kind, tmp_path)  # root -> gold.csv layout
        index = read_benchmark(kind, tmp_path / sub, layout="pairs-jsonl")
        assert len(official) == n
        by_id = {r.pair_id: r for r in index}
        for r in official:  # the gold.csv join gives the same pairs as our index
            j = by_id[r.pair_id]
            assert (r.positive.path, r.negative.path) == (j.positive.path, j.negative.path)
            assert (r.positive_text, r.negative_text) == (j.positive_text, j.negative_text)
            assert r.meta["voice"] in heldout_slugs
    for kind, sub in (("ssc", "sSC"), ("tsc", "tSC")):
        folder = read_benchmark(kind, tmp_path / sub, layout="storycloze-folder")
        index = read_benchmark(kind, tmp_path)  # root -> sSC/pairs.jsonl
        assert len(folder) == len(index) == n
        for f, j in zip(folder, index, strict=True):
            assert f.pair_id == j.pair_id and f.positive_text == j.positive_text
            assert f.negative_text == j.negative_text != j.positive_text
            assert j.meta["context"] in f.positive_text and j.meta["context"] in f.negative_text
        assert folder[0].positive.load().dtype == np.float32
    _assert_tsc_shares_ssc_audio(tmp_path)
    assert json.loads((tmp_path / "benchmarks.json").read_text())["balanced_by"] == "seconds"
    # determinism: a second run with the same seed writes the same indexes
    synthesize_benchmarks(tmp_path / "again", n_pairs=n, voices=HELDOUT, text_source="generator")
    for sub in ("lexical/dev/gold.csv", "syntactic/dev/gold.csv"):
        assert (tmp_path / sub).read_text() == (tmp_path / "again" / sub).read_text()
    a = [json.loads(x) for x in (tmp_path / "sSC/pairs.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "again/sSC/pairs.jsonl").read_text().splitlines()]
    assert a == b


@pytest.mark.tts
def test_benchmark_rerun_with_other_size_or_seed_leaves_no_stale_audio(tmp_path):
    from twistlm.synth.benchmarks import synthesize_benchmarks

    _need("flite:kal16")
    # unbalanced: the kept stories are 0..n-1, so file names of the two runs overlap
    kw = dict(voices=["flite:kal16"], benchmarks=("ssc", "tsc"), workers=1, balance_length=False)
    synthesize_benchmarks(tmp_path, n_pairs=3, seed=0, **kw)
    before = (tmp_path / "sSC" / "0_correct.wav").read_bytes()
    synthesize_benchmarks(tmp_path, n_pairs=2, seed=1, **kw)  # smaller, other stories
    for kind in ("ssc", "tsc"):
        folder = read_benchmark(kind, tmp_path / DIRS_SC[kind], layout="storycloze-folder")
        index = read_benchmark(kind, tmp_path)
        assert [r.pair_id for r in folder] == ["0", "1"]  # pair 2 of the first run is gone
        assert [r.positive_text for r in folder] == [r.positive_text for r in index]
    # same file name, new story: the audio was redone, not reused
    assert (tmp_path / "sSC" / "0_correct.wav").read_bytes() != before


DIRS_SC = {"ssc": "sSC", "tsc": "tSC"}


def _assert_tsc_shares_ssc_audio(root):
    """Every tSC true ending exists; for a story in sSC too it is the sSC audio (same bytes)."""
    ssc = {r.pair_id: r for r in read_benchmark("ssc", root)}
    for r in read_benchmark("tsc", root):
        tsc_audio = Path(r.positive.path).read_bytes()
        if r.pair_id in ssc:
            assert r.positive_text == ssc[r.pair_id].positive_text
            assert tsc_audio == Path(ssc[r.pair_id].positive.path).read_bytes()
    return set(ssc)


def _fake_run_jobs(jobs, *args, index=None, **kwargs):
    """Stand-in for synthesis: a tiny file per job, "1 second" each (keyed by path)."""
    from twistlm.synth.parallel import job_stamp

    for j in jobs:
        Path(j.path).parent.mkdir(parents=True, exist_ok=True)
        Path(j.path).write_bytes(j.text.encode())
        if index is not None:
            index.stamps[j.path] = job_stamp(j)
    return {j.path: 1.0 for j in jobs}


def test_lengths_callable_decides_the_balance(tmp_path, monkeypatch):
    from twistlm.synth import benchmarks as bm
    from twistlm.synth import candidates

    monkeypatch.setattr(bm, "run_jobs", _fake_run_jobs)
    monkeypatch.setattr(bm, "resolve_voices", lambda names, what: list(names))
    voices = ["flite:kal16"]
    # the candidates synthesize_benchmarks builds
    cands = candidates.sblimp_candidates(tmp_path, 8, voices, 0)
    shorter = {cands[5].pos.path, cands[7].pos.path}  # only these have the shorter positive
    negatives, calls = {p.neg.path for p in cands}, []

    def units(paths):  # negatives 4 units; positives 3 (the chosen two) or 5
        calls.append(list(paths))
        return {x: 4 if x in negatives else 3 if x in shorter else 5 for x in paths}

    s = bm.synthesize_benchmarks(
        tmp_path, n_pairs=4, voices=voices, benchmarks=["sblimp"], lengths=units
    )
    assert len(calls) == 1
    assert sorted(calls[0]) == sorted(j.path for p in cands for j in (p.pos, p.neg))
    index = read_benchmark("sblimp", tmp_path / "syntactic/dev", layout="pairs-jsonl")
    # generated order, kept while "shorter wins" stays within half a unit of 50%; then set-asides
    assert [r.positive.path for r in index] == [cands[i].pos.path for i in (0, 5, 6, 7)]
    assert s.n_pairs == {"sblimp": 4}
    assert s.balanced_by == "units"
    assert json.loads((tmp_path / "benchmarks.json").read_text())["balanced_by"] == "units"


@pytest.mark.tts
def test_storycloze_sets_are_length_balanced_and_share_true_endings(tmp_path):
    from twistlm.synth import benchmarks as bm
    from twistlm.synth.candidates import storycloze_candidates

    _need("flite:kal16")
    n, voices = 4, ["flite:kal16"]
    texts = {  # wav path -> text of every candidate (2n stories), in both output folders
        j.path: j.text
        for root, m in ((tmp_path, 2 * n), (tmp_path / "t", 4))
        for ps in storycloze_candidates(root, m, voices, 0).values()
        for p in ps
        for j in (p.pos, p.neg)
    }
    calls = []

    def words(paths):  # a length that does not depend on the TTS engine
        calls.append(list(paths))
        return {x: len(texts[x].split()) for x in paths}

    kw = dict(voices=voices, benchmarks=("ssc", "tsc"), workers=1, lengths=words)
    s = bm.synthesize_benchmarks(tmp_path, n_pairs=n, lengths_name="words", **kw)
    assert s.n_pairs == {"ssc": n, "tsc": n} and s.n_failed == 0 and s.balanced_by == "words"
    # tSC true endings are measured on their sSC source, never passed themselves
    assert not [x for x in calls[0] if "tSC" in x and x.endswith("_correct.wav")]
    ssc_ids = _assert_tsc_shares_ssc_audio(tmp_path)
    for kind in ("ssc", "tsc"):
        recs = read_benchmark(kind, tmp_path)
        folder = read_benchmark(kind, tmp_path / DIRS_SC[kind], layout="storycloze-folder")
        assert sorted(r.pair_id for r in folder) == sorted(r.pair_id for r in recs)  # no spares
        rule = sum(
            len(r.positive_text.split()) < len(r.negative_text.split()) for r in recs
        )  # "fewer units wins" picks the positive
        assert abs(rule - n / 2) <= 1
    tsc_ids = {r.pair_id for r in read_benchmark("tsc", tmp_path)}
    # the kinds keep different stories: shared ones share audio, a tSC-only source was removed
    assert tsc_ids & ssc_ids and tsc_ids - ssc_ids
    for k in tsc_ids - ssc_ids:
        assert (tmp_path / "tSC" / f"{k}_correct.wav").is_file()
        assert not (tmp_path / "sSC" / f"{k}_correct.wav").exists()
    # only tSC: its true endings are spoken, not copied
    s = bm.synthesize_benchmarks(tmp_path / "t", n_pairs=2, **{**kw, "benchmarks": ("tsc",)})
    assert s.n_pairs == {"tsc": 2} and not (tmp_path / "t" / "sSC").exists()
    assert all(Path(r.positive.path).is_file() for r in read_benchmark("tsc", tmp_path / "t"))


def test_balance_by_length_puts_the_length_rule_at_half():
    from twistlm.synth.candidates import CandidatePair, balance_by_length
    from twistlm.synth.parallel import Job

    def pair(i, voice, pos_len, neg_len, lengths):
        pos = Job(f"p{i}{voice}", voice, "w", f"/x/p{i}{voice}.wav")
        neg = Job(f"n{i}{voice}", voice, "nw", f"/x/n{i}{voice}.wav")
        lengths[pos.path], lengths[neg.path] = pos_len, neg_len
        return CandidatePair(f"{i}:{voice}", pos, neg, "w", "nw", "lexical", {"id": str(i)})

    lengths: dict[str, float] = {}  # seconds or unit counts: any length per wav path
    # ids 0-5 positive longer (as un-matched non-words often are), 6-7 positive shorter
    pairs = [pair(i, v, 10 + (2 if i < 6 else -2), 10, lengths) for i in range(8)
             for v in ("a", "b")]  # fmt: skip
    pairs.append(pair(9, "a", 10, 5, {}))  # no length: dropped
    picked = balance_by_length("swuggy", pairs, lengths, n=8)
    ids = [p.meta["id"] for p in picked]
    assert ids == ["0", "0", "6", "6", "7", "7", "1", "1"]  # both voices of an id stay together
    shorter = sum(lengths[p.pos.path] < lengths[p.neg.path] for p in picked)
    assert shorter == len(picked) / 2
    # not enough "shorter" units: the rest comes from the set-aside ones
    assert len(balance_by_length("swuggy", pairs, lengths, n=12)) == 12


def test_balance_by_length_counts_ties_as_half():
    """Ties score 0.5 under the length-only rule: a tie-heavy set must not count them as
    "positive longer" (that left the rule at 55% on sWUGGY)."""
    from twistlm.eval.controls import length_rule_outcomes
    from twistlm.synth.candidates import CandidatePair, balance_by_length
    from twistlm.synth.parallel import Job

    lengths: dict[str, float] = {}
    pairs = []
    # generated order: 4 ties, then 3 positive-shorter, then 3 positive-longer (one voice each)
    for i, (a, b) in enumerate([(5, 5)] * 4 + [(4, 6)] * 3 + [(7, 5)] * 3):
        pos = Job(f"p{i}", "v", "w", f"/x/p{i}.wav")
        neg = Job(f"n{i}", "v", "nw", f"/x/n{i}.wav")
        lengths[pos.path], lengths[neg.path] = a, b
        pairs.append(CandidatePair(str(i), pos, neg, "w", "nw", "lexical", {"id": str(i)}))
    picked = balance_by_length("swuggy", pairs, lengths, n=8)
    assert [p.meta["id"] for p in picked] == ["0", "1", "2", "3", "4", "7", "8", "5"]
    rule = length_rule_outcomes(
        [[0] * int(lengths[p.pos.path]) for p in picked],
        [[0] * int(lengths[p.neg.path]) for p in picked],
    )
    assert rule.mean() == 0.5


def test_sblimp_candidates_shrink_when_the_templates_run_out(tmp_path, monkeypatch):
    from twistlm.synth import benchmarks as bm
    from twistlm.synth import candidates

    real = candidates.sblimp_candidates
    asked = []

    def limited(out, n, voices, seed):
        asked.append(n)
        if n > 6:  # templates "give" only 6 pairs
            raise ValueError("cannot build")
        return real(out, n, voices, seed)

    monkeypatch.setattr(candidates, "sblimp_candidates", limited)
    monkeypatch.setattr(bm, "run_jobs", lambda jobs, *a, **k: {j.path: 1.0 for j in jobs})
    monkeypatch.setattr(bm, "resolve_voices", lambda names, what: list(names))
    s = bm.synthesize_benchmarks(tmp_path, n_pairs=4, voices=["flite:kal16"], benchmarks=["sblimp"])
    assert asked == [8, 6] and s.n_pairs["sblimp"] == 4


def test_story_candidates_shrink_when_the_templates_run_out(tmp_path, monkeypatch):
    from twistlm.synth import benchmarks as bm
    from twistlm.synth import candidates

    real, asked = candidates.make_stories, []

    def limited(n, seed=0):
        asked.append(n)
        if n > 6:  # templates "give" only 6 stories
            raise ValueError("cannot build")
        return real(n, seed)

    monkeypatch.setattr(candidates, "make_stories", limited)
    monkeypatch.setattr(bm, "run_jobs", _fake_run_jobs)
    monkeypatch.setattr(bm, "resolve_voices", lambda names, what: list(names))
    s = bm.synthesize_benchmarks(
        tmp_path, n_pairs=4, voices=["flite:kal16"], benchmarks=["ssc", "tsc"]
    )
    assert asked == [8, 6] and s.n_pairs == {"ssc": 4, "tsc": 4}
    _assert_tsc_shares_ssc_audio(tmp_path)
