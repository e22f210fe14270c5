"""Text of the syntactic (sBLIMP-style) minimal pairs and the StoryCloze-style stories.

sBLIMP-style: ``(type, subtype)`` phenomena, each a template whose grammatical and ungrammatical
versions differ in one word (agreement, argument structure, anaphors, irregular forms, NPIs)
or in the order of two adjacent words (word order). Every phenomenon has over 1,000 distinct
grammatical sentences, so several thousand distinct pairs per seed are possible.

Stories: five-sentence passages from topic families (context of four sentences + ending).
tSC-style negatives take the ending of a random story of another family; sSC-style negatives
keep the topic and characters but contradict the passage (``contradiction``) or hand the
ending to a person who is not in the story (``wrong-person``), which is much harder.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

MALE = "Adam Ben Carl David Frank Henry Jack Kevin Martin Oscar Peter Sam Tom Victor".split()
FEMALE = "Anna Beth Clara Emma Grace Helen Julia Kate Laura Maria Nina Rose Sarah Wendy".split()
NAMES = MALE + FEMALE
# people nouns with a plain "-s" plural (subjects of reflexive verbs)
PEOPLE = (
    "teacher doctor farmer singer driver baker student painter pilot nurse writer dancer "
    "player sailor soldier waiter friend guest"
).split()
NOUNS = ["dog", "cat", *PEOPLE]
# things with a plain "-s" plural that a person can carry
THINGS = (
    "book door letter window table picture bottle basket ladder blanket chair lamp bucket "
    "jacket pencil candle mirror kettle carpet"
).split()
ADJ = "old small heavy yellow broken quiet shiny wooden empty famous new red dirty large".split()
# verb (3rd singular, plural) pairs for agreement
VERBS = [("sleeps", "sleep"), ("walks", "walk"), ("sings", "sing"), ("waits", "wait"),
         ("laughs", "laugh"), ("works", "work"), ("smiles", "smile"), ("runs", "run"),
         ("eats", "eat"), ("rests", "rest")]  # fmt: skip
# time/place phrases that fit present and past sentences alike
ADVERBS = (
    "every day,in the morning,after dinner,at night,very often,again,after lunch,"
    "in the evening,on Sundays,at home,at school,every week,sometimes,today"
).split(",")
TRANSITIVE = "found,cleaned,carried,painted,opened,broke,sold,moved".split(",")
INTRANSITIVE = "arrived,slept,fainted,smiled,laughed,waited,yawned,vanished".split(",")
REFLEXIVE = "hurt,blamed,helped,praised,washed,dressed".split(",")
# verbs of "{name} {verb} the {thing} home"
TAKE_HOME = "carried,brought,took,sent,dragged".split(",")
IRREGULAR = [("ate", "eated"), ("drank", "drinked"), ("took", "taked"), ("saw", "seed"),
             ("wrote", "writed"), ("bought", "buyed"), ("brought", "bringed"), ("threw", "throwed")]  # fmt: skip
IRREGULAR_OBJ = {"ate": "apple", "drank": "juice", "took": "bus", "saw": "bird", "wrote": "letter",
                 "bought": "bread", "brought": "cake", "threw": "ball"}  # fmt: skip
PARTICIPLES = "seen,moved,opened,painted,touched,cleaned,used,sold,fixed,bought".split(",")


@dataclass(frozen=True)
class SentencePair:
    type: str
    subtype: str
    good: str
    bad: str


def _cap(s: str) -> str:
    return s[0].upper() + s[1:]


def _a(word: str) -> str:
    """The indefinite article before ``word`` (the lists hold no "hour"/"unit"-like words)."""
    return "an" if word[0] in "aeiou" else "a"


# one builder per phenomenon: random.Random -> (good, bad)
Builder = Callable[[random.Random], tuple[str, str]]


def _sv_singular(r: random.Random) -> tuple[str, str]:
    n, n2 = r.sample(NOUNS, 2)
    (sg, pl), adv = r.choice(VERBS), r.choice(ADVERBS)
    return f"The {n} near the {n2}s {sg} {adv}.", f"The {n} near the {n2}s {pl} {adv}."


def _sv_plural(r: random.Random) -> tuple[str, str]:
    n, (sg, pl), adv = r.choice(NOUNS), r.choice(VERBS), r.choice(ADVERBS)
    return f"The {n}s {pl} {adv}.", f"The {n}s {sg} {adv}."


def _det_noun_agreement(r: random.Random) -> tuple[str, str]:
    name, thing, adv = r.choice(NAMES), r.choice(THINGS), r.choice(ADVERBS)
    return f"{name} saw these {thing}s {adv}.", f"{name} saw this {thing}s {adv}."


def _adj_noun_order(r: random.Random) -> tuple[str, str]:
    name, thing, adv = r.choice(NAMES), r.choice(THINGS), r.choice(ADVERBS)
    adj = r.choice(ADJ)
    a = _a(adj)
    return f"{name} found {a} {adj} {thing} {adv}.", f"{name} found {a} {thing} {adj} {adv}."


def _det_noun_order(r: random.Random) -> tuple[str, str]:
    name, verb, thing = r.choice(NAMES), r.choice(TAKE_HOME), r.choice(THINGS)
    return f"{name} {verb} the {thing} home.", f"{name} {verb} {thing} the home."


def _transitive(r: random.Random) -> tuple[str, str]:
    name, thing = r.choice(NAMES), r.choice(THINGS)
    tv, iv = r.choice(TRANSITIVE), r.choice(INTRANSITIVE)
    return f"{name} {tv} the {thing}.", f"{name} {iv} the {thing}."


def _intransitive(r: random.Random) -> tuple[str, str]:
    n, adv = r.choice(NOUNS), r.choice(ADVERBS)
    tv, iv = r.choice(TRANSITIVE), r.choice(INTRANSITIVE)
    return f"The {n} {iv} {adv}.", f"The {n} {tv} {adv}."


def _anaphor_gender(r: random.Random) -> tuple[str, str]:
    male = r.random() < 0.5
    name = r.choice(MALE if male else FEMALE)
    verb, adv = r.choice(REFLEXIVE), r.choice(ADVERBS)
    right, wrong = ("himself", "herself") if male else ("herself", "himself")
    return f"{name} {verb} {right} {adv}.", f"{name} {verb} {wrong} {adv}."


def _anaphor_number(r: random.Random) -> tuple[str, str]:
    n, verb, adv = r.choice(PEOPLE), r.choice(REFLEXIVE), r.choice(ADVERBS)
    return f"The {n}s {verb} themselves {adv}.", f"The {n}s {verb} himself {adv}."


def _irregular(r: random.Random) -> tuple[str, str]:
    name, (irr, wrong), adv = r.choice(NAMES), r.choice(IRREGULAR), r.choice(ADVERBS)
    obj = IRREGULAR_OBJ[irr]
    return f"{name} {irr} the {obj} {adv}.", f"{name} {wrong} the {obj} {adv}."


def _npi_ever(r: random.Random) -> tuple[str, str]:
    part, adj, thing = r.choice(PARTICIPLES), r.choice(ADJ), r.choice(THINGS)
    return (
        f"Nobody has ever {part} the {adj} {thing}.",
        f"Somebody has ever {part} the {adj} {thing}.",
    )


BUILDERS: dict[tuple[str, str], Builder] = {
    ("agreement", "subject_verb_singular"): _sv_singular,
    ("agreement", "subject_verb_plural"): _sv_plural,
    ("agreement", "determiner_noun"): _det_noun_agreement,
    ("word_order", "adjective_noun"): _adj_noun_order,
    ("word_order", "determiner_noun"): _det_noun_order,
    ("argument_structure", "transitive"): _transitive,
    ("argument_structure", "intransitive"): _intransitive,
    ("anaphor_agreement", "gender"): _anaphor_gender,
    ("anaphor_agreement", "number"): _anaphor_number,
    ("irregular_forms", "past_tense"): _irregular,
    ("npi_licensing", "ever"): _npi_ever,
}
PHENOMENA = tuple(BUILDERS)


def make_sentence_pairs(n: int, seed: int = 0) -> list[SentencePair]:
    """``n`` distinct minimal pairs, cycling over :data:`PHENOMENA` (deterministic).

    Raises ``ValueError`` when the templates cannot give ``n`` distinct good sentences.
    """
    r = random.Random(seed)
    out: list[SentencePair] = []
    seen: set[str] = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError(f"cannot build {n} distinct sentence pairs from the templates")
        key = PHENOMENA[len(out) % len(PHENOMENA)]
        good, bad = BUILDERS[key](r)
        if good in seen:
            continue
        seen.add(good)
        out.append(SentencePair(key[0], key[1], good, bad))
    return out


# ---------------------------------------------------------------------------------------------
# stories


@dataclass(frozen=True)
class Story:
    family: str
    context: str  # four sentences
    ending: str  # the true ending
    contradiction: str  # an ending that contradicts the context (same person)
    wrong_person: str  # the true ending given to someone not in the story


# family: (context sentences, true ending, contradicting ending). {N} name, {P} He/She,
# {p} he/she, {o} him/her, {s} his/her, plus family slots.
_FAMILIES = {
    "picnic": (
        ["{N} planned a picnic at {place}.", "{P} packed {food} and a blanket.",
         "When {p} arrived, dark clouds covered the sky.", "Soon it began to rain heavily."],
        "{N} ran back home, soaked and disappointed.",
        "{N} enjoyed a dry and sunny afternoon on the grass.",
    ),
    "lost": (
        ["{N} could not find {s} {item}.", "{P} searched the {room} and the garage.",
         "{P} asked everyone in the family.", "Finally {p} looked under the {furniture}."],
        "There was the {item}, covered in dust.",
        "{N} remembered that {p} had never owned a {item}.",
    ),
    "baking": (
        ["{N} wanted to bake a {cake} for {s} {relative}.", "{P} bought flour, eggs and sugar.",
         "{P} followed the recipe carefully.", "Soon the kitchen smelled wonderful."],
        "{s_cap} {relative} loved the {cake}.",
        "{N} realised {p} had forgotten to buy any ingredients.",
    ),
    "exam": (
        ["{N} had a big {subject} exam on Monday.", "{P} studied every night for two weeks.",
         "On the day of the test {p} felt calm.", "The questions were exactly what {p} had practised."],
        "{N} got the best grade in the class.",
        "{N} failed because {p} had not studied at all.",
    ),
    "pet": (
        ["{N} found a small {animal} in the street.", "It was cold and very hungry.",
         "{P} took it home and gave it some {petfood}.", "The next morning it followed {o} everywhere."],
        "{N} decided to keep the {animal}.",
        "{N} was glad {p} had left the {animal} in the street.",
    ),
    "match": (
        ["{N} joined the {sport} team at school.", "{P} practised every day after class.",
         "In the final match {p} scored the winning point.", "The crowd cheered loudly."],
        "{N} felt proud of {o}self.",
        "{N} was sad that {s} team had lost the final.",
    ),
    "garden": (
        ["{N} planted {flower} seeds in the spring.", "{P} watered them every morning.",
         "{P} pulled out the weeds every week.", "By summer the garden was full of colour."],
        "{P} picked a bunch of {flowers} for {s} {relative}.",
        "{N} was upset that nothing had grown at all.",
    ),
    "train": (
        ["{N} had an important meeting in {city}.", "{P} woke up late and skipped breakfast.",
         "{P} ran all the way to the station.", "The train was just closing its doors."],
        "{P} jumped on board at the last second.",
        "{N} arrived at the meeting an hour early, calm and rested.",
    ),
}  # fmt: skip
_SLOTS = {
    "place": ["the lake", "the park", "the beach", "the hill", "the river"],
    "food": ["sandwiches", "fruit", "cold chicken", "cheese and bread", "cookies"],
    "item": ["keys", "wallet", "glasses", "phone", "watch", "hat"],
    "room": ["bedroom", "kitchen", "living room", "attic", "office"],
    "furniture": ["sofa", "bed", "desk", "cupboard", "table"],
    "cake": ["chocolate cake", "apple pie", "lemon cake", "birthday cake", "carrot cake"],
    "relative": ["mother", "father", "sister", "brother", "grandmother", "uncle"],
    "subject": ["history", "maths", "biology", "French", "physics", "music"],
    "animal": ["kitten", "puppy", "rabbit", "bird", "hedgehog"],
    "petfood": ["milk", "warm food", "water and bread", "fish"],
    "sport": ["football", "basketball", "volleyball", "hockey", "tennis"],
    "flower": ["tulip", "rose", "daisy", "sunflower", "lily"],
    "city": ["London", "Paris", "Boston", "Berlin", "Madrid", "Chicago"],
}
FAMILIES = tuple(_FAMILIES)


def _fill(tpl: str, slots: dict[str, str]) -> str:
    s = tpl.format(**slots)
    return s[0].upper() + s[1:]


def make_stories(n: int, seed: int = 0) -> list[Story]:
    """``n`` distinct stories cycling over :data:`FAMILIES` (deterministic)."""
    r = random.Random(seed)
    out, seen, tries = [], set(), 0
    while len(out) < n:
        tries += 1
        if tries > 100 * n + 1000:
            raise ValueError(f"cannot build {n} distinct stories from the templates")
        fam = FAMILIES[len(out) % len(FAMILIES)]
        ctx, good, bad = _FAMILIES[fam]
        male = r.random() < 0.5
        name = r.choice(MALE if male else FEMALE)
        other = r.choice([x for x in (MALE if male else FEMALE) if x != name])
        slots = {k: r.choice(v) for k, v in _SLOTS.items()}
        f = slots["flower"]
        slots["flowers"] = f[:-1] + "ies" if f.endswith("y") else f + "s"
        pro = ("He", "he", "him", "his") if male else ("She", "she", "her", "her")
        slots.update(N=name, P=pro[0], p=pro[1], o=pro[2], s=pro[3], s_cap=_cap(pro[3]))
        context = " ".join(_fill(t, slots) for t in ctx)
        if context in seen:
            continue
        seen.add(context)
        ending = _fill(good, slots)
        wrong = _fill(good, {**slots, "N": other}) if "{N}" in good else None
        if wrong is None or wrong == ending:  # ending names nobody: put the other person in front
            wrong = f"{other} said that " + ending[0].lower() + ending[1:]
        out.append(Story(fam, context, ending, _fill(bad, slots), wrong))
    return out
