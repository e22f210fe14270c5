"""Text for the synthetic corpus: sources behind a registry, cleaning, utterance splitting.

Sources (``TEXT_SOURCES``):
- ``fortunes``: Debian ``fortunes`` quotes (natural English that no warm-start LM was tuned on);
  the default when ``/usr/share/games/fortunes`` exists. Offensive (``off/``) and art files skipped.
- ``file``: a user's plain-text file or folder of ``*.txt`` files (paragraphs split on blank lines).
- ``generator``: a small template generator written here; needs no system package.

``load_utterances(source, seed, ...)`` returns cleaned utterances of about 3-15 s of speech
(``MIN_WORDS``-``MAX_WORDS`` words at ~2.7 words/s), deterministically shuffled by ``seed``.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

FORTUNES_DIR = Path("/usr/share/games/fortunes")
# ASCII art, code and word lists do not read aloud
SKIP_FORTUNE_FILES = {"art", "ascii-art", "perl", "linux", "linuxcookie", "translate-me", "debian"}

MIN_WORDS, MAX_WORDS = 8, 38
WORDS_PER_SECOND = 2.7  # flite/festival/espeak at default rates, measured on the corpus

_ATTRIBUTION = re.compile(r"^\s*(--|—|~)\s*\S")
_ALLOWED = re.compile(r"[^A-Za-z0-9 .,;:!?'\-]")
_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


class TextSourceError(ValueError):
    """A text source that cannot be used (missing path, no usable text)."""


def clean_passage(raw: str) -> str | None:
    """One quote/paragraph -> plain speakable text, or None if it is not speakable prose.

    Drops attribution lines (``-- Mark Twain``), numbering like ``(1)``, markup and symbols;
    rejects passages that are mostly non-letters (ASCII art, code) or dialogue scripts.
    """
    lines = [ln for ln in raw.splitlines() if ln.strip() and not _ATTRIBUTION.match(ln)]
    if not lines:
        return None
    text = " ".join(ln.strip() for ln in lines)
    letters = sum(c.isalpha() for c in text)
    if letters < 0.6 * len(text):  # art, tables, code
        return None
    text = re.sub(r"\(\d+\)|\[\d+\]", " ", text)  # list numbering, footnotes
    text = re.sub(r"\b[A-Z][A-Za-z]*:\s", " ", text) if text.count(":") > 2 else text  # scripts
    # SHOUTED words (4+ letters; shorter ones are likely acronyms) would be spelled out by some voices
    text = re.sub(r"\b[A-Z]{4,}\b", lambda m: m.group(0).capitalize(), text)
    text = text.replace("--", ", ").replace("&", " and ").replace('"', "").replace("`", "'")
    text = _ALLOWED.sub(" ", text)
    text = re.sub(r"\s+([.,;:!?])", r"\1", text)
    text = re.sub(r"([.,;:!?])\1+", r"\1", text)
    text = " ".join(text.split()).strip(" ,;:-'")
    if len(text.split()) < 3 or sum(c.isalpha() for c in text) < 10:
        return None
    if text[-1] not in ".!?":
        text += "."
    return text


def split_utterances(
    text: str, min_words: int = MIN_WORDS, max_words: int = MAX_WORDS
) -> list[str]:
    """Split a passage into utterances of ``min_words``..``max_words`` words at sentence ends.

    Sentences are packed greedily; a sentence longer than ``max_words`` is cut at commas, then
    at word boundaries. A short passage (>= 3 words) is kept whole rather than dropped.
    """
    pieces: list[str] = []
    for sent in _SENT_SPLIT.split(text):
        words = sent.split()
        if len(words) <= max_words:
            pieces.append(sent)
            continue
        buf: list[str] = []
        for w in words:
            buf.append(w)
            if (w.endswith(",") and len(buf) >= min_words) or len(buf) >= max_words:
                pieces.append(" ".join(buf))
                buf = []
        if buf:
            pieces.append(" ".join(buf))
    out: list[str] = []
    cur: list[str] = []
    for p in pieces:
        n = len(" ".join(cur).split())
        if cur and n + len(p.split()) > max_words:
            out.append(" ".join(cur))
            cur = []
        cur.append(p)
        if len(" ".join(cur).split()) >= min_words:
            out.append(" ".join(cur))
            cur = []
    if cur:
        if out and len(" ".join([out[-1], *cur]).split()) <= max_words:
            out[-1] = " ".join([out[-1], *cur])
        elif len(" ".join(cur).split()) >= 3:
            out.append(" ".join(cur))
    return [u.rstrip(",;:") + ("" if u[-1] in ".!?" else ".") for u in out]


# ---------------------------------------------------------------------------------------------
# sources


def _fortune_passages(root: Path = FORTUNES_DIR) -> Iterable[str]:
    if not root.is_dir():
        raise TextSourceError(f"{root} not found: apt-get install fortunes (or use --text FILE)")
    for f in sorted(root.iterdir()):
        if not f.is_file() or f.suffix in (".dat", ".u8") or f.name in SKIP_FORTUNE_FILES:
            continue
        raw = f.read_text(errors="replace")
        yield from re.split(r"^%\s*$", raw, flags=re.M)


def _file_passages(path: Path) -> Iterable[str]:
    path = Path(path)
    if path.is_dir():
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise TextSourceError(f"{path}: no *.txt files")
    elif path.is_file():
        files = [path]
    else:
        raise TextSourceError(f"{path}: not found")
    for f in files:
        yield from re.split(r"\n\s*\n", f.read_text(errors="replace"))


# the built-in generator: simple declarative sentences from small word lists
_G = {
    "name": "Anna Ben Clara David Emma Frank Grace Henry Julia Kevin Laura Martin Nina Oscar".split(),
    "adj": "old small quiet busy bright cold warm green heavy friendly tired happy".split(),
    "noun": "house garden river letter window teacher village market kitchen story road car".split(),
    "place": "the park,the station,the library,the old church,the beach,the market,town".split(","),
    "verb": "opened,painted,visited,found,cleaned,carried,watched,followed,described,fixed".split(
        ","
    ),
    "time": "in the morning,after lunch,on Sunday,last winter,every evening,at night".split(","),
    "conj": "because,although,while,so,and then".split(","),
}
_TEMPLATES = [
    "{name} {verb} the {adj} {noun} {time}.",
    "{time}, {name} walked to {place} {conj} the {noun} was {adj}.",
    "The {adj} {noun} near {place} was {verb} by {name} {time}.",
    "{name} said that the {noun} at {place} looked {adj} {time}.",
    "When {name} {verb} the {noun}, everyone at {place} felt {adj}.",
]


def generated_passages(seed: int = 0, n: int = 8000) -> list[str]:
    """``n`` template sentences grouped into passages of 2-4 sentences (deterministic)."""
    rng = random.Random(seed)
    sents = []
    for _ in range(n):
        t = rng.choice(_TEMPLATES)
        s = t.format(**{k: rng.choice(v) for k, v in _G.items()})
        sents.append(s[0].upper() + s[1:])
    out, i = [], 0
    while i < len(sents):
        k = rng.randint(2, 4)
        out.append(" ".join(sents[i : i + k]))
        i += k
    return out


TEXT_SOURCES: dict[str, Callable[..., Iterable[str]]] = {
    "fortunes": lambda path=None, seed=0: _fortune_passages(Path(path) if path else FORTUNES_DIR),
    "file": lambda path=None, seed=0: _file_passages(Path(path)) if path else _no_path(),
    "generator": lambda path=None, seed=0: generated_passages(seed),
}


def _no_path():
    raise TextSourceError("text source 'file' needs a path (--text FILE_OR_FOLDER)")


def default_source() -> str:
    return "fortunes" if FORTUNES_DIR.is_dir() else "generator"


def load_utterances(
    source: str = "auto", path: str | Path | None = None, seed: int = 0
) -> list[str]:
    """Cleaned, deduplicated utterances from ``source``, shuffled deterministically by ``seed``."""
    if source == "auto":
        source = "file" if path else default_source()
    if source not in TEXT_SOURCES:
        raise TextSourceError(f"unknown text source {source!r}; one of {sorted(TEXT_SOURCES)}")
    seen, out = set(), []
    for raw in TEXT_SOURCES[source](path=path, seed=seed):
        text = clean_passage(raw)
        if text is None:
            continue
        for u in split_utterances(text):
            key = u.lower()
            if len(u.split()) >= 3 and key not in seen:
                seen.add(key)
                out.append(u)
    if not out:
        raise TextSourceError(f"text source {source!r} ({path or 'default'}) gave no usable text")
    random.Random(seed).shuffle(out)
    return out


def word_counts(utterances: Iterable[str]) -> Counter:
    """Lower-case alphabetic word counts (frequencies for the sWUGGY frequency bands)."""
    c: Counter = Counter()
    for u in utterances:
        c.update(w for w in re.findall(r"[a-z]+", u.lower()))
    return c


def estimate_seconds(text: str) -> float:
    return len(text.split()) / WORDS_PER_SECOND + 0.3
