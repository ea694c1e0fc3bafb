"""Sentences for the demo model: a small English grammar over a fixed vocabulary of ~900 words.

A template grammar (rather than scraped text) keeps the vocabulary closed, so a model trained for
an hour on one CPU can learn to spell every word, while the combinations are varied enough that
the held-out sentences are genuinely new sentences. Everything is seeded.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable


def _words(text: str) -> list[str]:
    return text.split()


# fmt: off
NOUNS = _words(
    """
apple table window garden river mountain city house street car train bus bicycle boat plane computer
phone letter book paper pencil camera picture door kitchen bedroom office school teacher student
doctor nurse driver farmer artist singer player friend neighbor brother sister mother father uncle
cousin baby child dog cat horse bird fish cow rabbit mouse coffee tea water milk bread cheese butter
sugar salt soup cake cookie sandwich dinner lunch breakfast market store shop bank hotel restaurant
hospital library museum station airport park beach forest island lake ocean field farm bridge tower
castle village road corner morning evening night week month year minute hour weekend holiday
birthday party meeting question answer problem idea story song movie game ticket card gift box bag
key map clock watch shirt jacket hat shoe dress coat glove umbrella blanket pillow chair desk lamp
mirror bottle glass cup plate spoon knife fork bowl basket bucket rope ladder hammer wheel engine
machine robot server model network message email report plan project button screen keyboard window
cloud storm rain snow wind sun moon star sky fire stone flower tree leaf grass seed fruit orange
banana lemon potato tomato onion carrot garlic pepper rice pasta pizza chicken egg honey juice wine
music guitar piano drum violin voice sound noise light color shadow number list word name language
letter page chapter price bill coin wallet account contract order package delivery address manager
team company customer worker engineer pilot captain soldier king queen prince officer lawyer
"""
)

ADJECTIVES = _words(
    """
big small old new young long short tall hot cold warm cool dark bright quiet loud fast slow happy
sad angry tired hungry busy free cheap expensive easy hard simple strange beautiful ugly clean dirty
empty full heavy light soft rough smooth sharp wet dry early late strong weak rich poor safe
dangerous famous friendly green blue red yellow white black brown purple orange golden silver wooden
broken modern ancient fresh sweet sour bitter spicy delicious lovely terrible wonderful careful
lucky important interesting boring funny serious quick gentle brave calm clever curious
"""
)

# (base, past, third person singular) — irregular forms written out.
VERBS: list[tuple[str, str, str]] = [
    ("open", "opened", "opens"), ("close", "closed", "closes"), ("clean", "cleaned", "cleans"),
    ("paint", "painted", "paints"), ("fix", "fixed", "fixes"), ("wash", "washed", "washes"),
    ("carry", "carried", "carries"), ("move", "moved", "moves"), ("watch", "watched", "watches"),
    ("check", "checked", "checks"), ("call", "called", "calls"), ("visit", "visited", "visits"),
    ("help", "helped", "helps"), ("like", "liked", "likes"), ("love", "loved", "loves"),
    ("want", "wanted", "wants"), ("need", "needed", "needs"), ("order", "ordered", "orders"),
    ("cook", "cooked", "cooks"), ("play", "played", "plays"), ("start", "started", "starts"),
    ("finish", "finished", "finishes"), ("change", "changed", "changes"), ("push", "pushed", "pushes"),
    ("pull", "pulled", "pulls"), ("count", "counted", "counts"), ("share", "shared", "shares"),
    ("send", "sent", "sends"), ("bring", "brought", "brings"), ("buy", "bought", "buys"),
    ("sell", "sold", "sells"), ("find", "found", "finds"), ("lose", "lost", "loses"),
    ("make", "made", "makes"), ("take", "took", "takes"), ("give", "gave", "gives"),
    ("see", "saw", "sees"), ("hold", "held", "holds"), ("keep", "kept", "keeps"),
    ("leave", "left", "leaves"), ("build", "built", "builds"), ("draw", "drew", "draws"),
    ("write", "wrote", "writes"), ("read", "read", "reads"), ("eat", "ate", "eats"),
    ("drink", "drank", "drinks"), ("catch", "caught", "catches"), ("throw", "threw", "throws"),
    ("break", "broke", "breaks"), ("choose", "chose", "chooses"), ("forget", "forgot", "forgets"),
    ("hide", "hid", "hides"), ("sing", "sang", "sings"), ("teach", "taught", "teaches"),
    ("feed", "fed", "feeds"), ("drive", "drove", "drives"), ("ride", "rode", "rides"),
    ("steal", "stole", "steals"), ("borrow", "borrowed", "borrows"), ("return", "returned", "returns"),
    ("deliver", "delivered", "delivers"), ("repair", "repaired", "repairs"), ("test", "tested", "tests"),
    ("update", "updated", "updates"), ("install", "installed", "installs"), ("print", "printed", "prints"),
    ("follow", "followed", "follows"), ("answer", "answered", "answers"), ("enjoy", "enjoyed", "enjoys"),
    ("remember", "remembered", "remembers"), ("describe", "described", "describes"),
]

# Intransitive (base, past, third person, -ing).
MOTION: list[tuple[str, str, str, str]] = [
    ("walk", "walked", "walks", "walking"), ("run", "ran", "runs", "running"),
    ("go", "went", "goes", "going"), ("come", "came", "comes", "coming"),
    ("drive", "drove", "drives", "driving"), ("fly", "flew", "flies", "flying"),
    ("swim", "swam", "swims", "swimming"), ("travel", "traveled", "travels", "traveling"),
    ("move", "moved", "moves", "moving"), ("hurry", "hurried", "hurries", "hurrying"),
    ("return", "returned", "returns", "returning"), ("climb", "climbed", "climbs", "climbing"),
]

NAMES = _words(
    """
anna peter maria john linda david sarah james emma thomas laura michael olivia daniel sophie robert
alice george lucy henry grace jack emily oscar chloe samuel ruby adam clara victor nina paul helen
frank julia martin rose kevin diana simon irene carlos mia leo hannah
"""
)

PLACES = _words(
    """
kitchen garden office school station airport market library museum hospital hotel beach park village
forest harbor stadium theater bakery factory garage church university
"""
)

CITIES = _words(
    """
london paris berlin madrid rome tokyo boston chicago denver seattle dublin vienna sydney toronto
lisbon oslo cairo delhi moscow athens
"""
)

RELATIVES = _words(
    """
mother father brother sister uncle aunt cousin grandmother grandfather friend neighbor
"""
)
ADVERBS = _words(
    """
very really quite rather too always never often sometimes usually
"""
)
MANNER = _words(
    """
quickly slowly quietly carefully loudly happily gently easily suddenly finally
"""
)
TIMES = ["today", "tomorrow", "yesterday", "tonight"]
TIME_PHRASES = [
    "this morning", "this evening", "last night", "next week", "last week", "next month",
    "last year", "every day", "on monday", "on tuesday", "on wednesday", "on thursday",
    "on friday", "on saturday", "on sunday", "in the morning", "in the afternoon",
    "after lunch", "before dinner", "at noon", "at midnight", "in january", "in april",
    "in july", "in october", "in december", "in the spring", "in the summer", "in the winter",
]
PREPOSITIONS = _words(
    """
in on under behind near beside inside outside above below
"""
)
NUMBERS = [
    *_words("two three four five six seven eight nine ten eleven twelve fifteen twenty thirty forty fifty"),
    "a hundred",
]
WEATHER = ["sunny", "rainy", "cloudy", "windy", "foggy", "snowy", "cold", "warm", "hot"]
COLOR = ["red", "blue", "green", "yellow", "white", "black", "brown", "purple", "orange"]
# fmt: on
UNCOUNTABLE = set(
    [
        "coffee",
        "tea",
        "water",
        "milk",
        "bread",
        "cheese",
        "butter",
        "sugar",
        "salt",
        "soup",
        "rice",
        "pasta",
        "honey",
        "juice",
        "wine",
        "music",
        "rain",
        "snow",
        "wind",
        "sun",
        "moon",
        "sky",
        "fire",
        "grass",
        "garlic",
        "pepper",
        "paper",
        "light",
        "breakfast",
        "lunch",
        "dinner",
        "noise",
        "delivery",
        "sound",
        "voice",
    ]
)
COUNTABLE = [n for n in NOUNS if n not in UNCOUNTABLE]


def plural(noun: str) -> str:
    if noun in {"child"}:
        return "children"
    if noun in {"mouse"}:
        return "mice"
    if noun in {"fish", "sheep"}:
        return noun
    if noun in {"knife", "leaf"}:
        return noun[:-2] + "ves" if noun.endswith("fe") else noun[:-1] + "ves"
    if noun in {"potato", "tomato"}:
        return noun + "es"
    if re.search(r"(s|x|ch|sh)$", noun):
        return noun + "es"
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    return noun + "s"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


Template = Callable[[random.Random], str]


def _templates() -> list[Template]:
    def c(options: list[str]) -> Callable[[random.Random], str]:
        return lambda r: r.choice(options)

    noun, adj, name, place, city = c(NOUNS), c(ADJECTIVES), c(NAMES), c(PLACES), c(CITIES)
    countable = c(COUNTABLE)
    rel, adv, manner, number = c(RELATIVES), c(ADVERBS), c(MANNER), c(NUMBERS)
    prep, weather = c(PREPOSITIONS), c(WEATHER)

    def when(r: random.Random) -> str:
        return r.choice(TIMES) if r.random() < 0.4 else r.choice(TIME_PHRASES)

    def np(r: random.Random) -> str:  # a noun phrase
        n = noun(r)
        kind = r.random()
        if kind < 0.3:
            return f"the {n}"
        if kind < 0.55:
            return f"the {adj(r)} {n}"
        if kind < 0.75:
            a = adj(r)
            return f"{_article(a)} {a} {n}"
        if kind < 0.87:
            return f"my {n}"
        return f"{name(r)}'s {n}"

    def verb(r: random.Random) -> tuple[str, str, str]:
        return r.choice(VERBS)

    def moving(r: random.Random) -> tuple[str, str, str, str]:
        return r.choice(MOTION)

    return [
        lambda r: f"{name(r)} {verb(r)[1]} {np(r)} {when(r)}",
        lambda r: f"{np(r)} is {adv(r)} {adj(r)}",
        lambda r: f"please {verb(r)[0]} {np(r)} {prep(r)} the {noun(r)}",
        lambda r: f"can you {verb(r)[0]} {np(r)} {when(r)}",
        lambda r: f"i think {np(r)} is {adj(r)}",
        lambda r: f"we will {verb(r)[0]} {number(r)} {plural(countable(r))} {when(r)}",
        lambda r: f"{name(r)} and {name(r)} {moving(r)[1]} to the {place(r)} {when(r)}",
        lambda r: f"there are {number(r)} {adj(r)} {plural(countable(r))} in the {place(r)}",
        lambda r: f"my {rel(r)} {verb(r)[1]} {np(r)} {manner(r)}",
        lambda r: f"it's {weather(r)} in {city(r)} {when(r)}",
        lambda r: f"don't {verb(r)[0]} {np(r)} before {when(r).removeprefix('on ')}",
        lambda r: f"the {noun(r)} {prep(r)} the {place(r)} is {adj(r)}",
        lambda r: (
            f"{name(r)} {verb(r)[2]} {plural(countable(r))} every {r.choice(['day', 'week', 'morning'])}"
        ),
        lambda r: f"where did you {verb(r)[0]} {np(r)}",
        lambda r: f"i'm {moving(r)[3]} to {city(r)} {when(r)}",
        lambda r: f"the {adj(r)} {noun(r)} {moving(r)[1]} {manner(r)} {prep(r)} the {noun(r)}",
        lambda r: f"we can't {verb(r)[0]} {np(r)} without {np(r)}",
        lambda r: f"{name(r)} said that {np(r)} was {adj(r)}",
        lambda r: f"let's {verb(r)[0]} {np(r)} {when(r)}",
        lambda r: f"how many {plural(countable(r))} did {name(r)} {verb(r)[0]}",
        lambda r: f"that's {_article(a := adj(r))} {a} {noun(r)}",
        lambda r: f"the {c(COLOR)(r)} {noun(r)} belongs to my {rel(r)}",
        lambda r: f"{name(r)} will {moving(r)[0]} to the {place(r)} {when(r)}",
        lambda r: f"you should {verb(r)[0]} {np(r)} {manner(r)}",
        lambda r: f"why is {np(r)} so {adj(r)}",
    ]


def normalize(text: str) -> str:
    """The transcript form the model writes: lower case, a-z, apostrophes, single spaces."""
    text = text.lower().replace("\u00a0", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    return " ".join(text.split())


def generate(count: int, seed: int, exclude: Iterable[str] = ()) -> list[str]:
    """``count`` distinct sentences, none of them in ``exclude``; same seed, same sentences."""
    rng = random.Random(seed)
    templates = _templates()
    banned = set(exclude)
    out: list[str] = []
    seen: set[str] = set()
    attempts = 0
    while len(out) < count:
        attempts += 1
        if attempts > count * 50:
            raise RuntimeError(f"could only make {len(out)} distinct sentences of {count}")
        sentence = normalize(rng.choice(templates)(rng))
        if sentence in seen or sentence in banned:
            continue
        seen.add(sentence)
        out.append(sentence)
    return out


def vocabulary() -> set[str]:
    """Every word the grammar can produce (for reporting)."""
    words: set[str] = set()
    for sentence in generate(20000, seed=12345):
        words.update(sentence.split())
    return words
