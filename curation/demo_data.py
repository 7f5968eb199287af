"""A deterministic synthetic corpus and benchmark for the demo (no copied texts).

The corpus mixes five domains written from small vocabularies and templates, plus
near-duplicates (a copy with a few words changed) and junk (boilerplate, symbol
noise, repeated tokens), so every curation stage has something to find. The
benchmark is question/answer pairs about the ``science`` domain, in the same
``Q: ... A: ...`` layout as common benchmark files.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

DOMAINS: dict[str, dict[str, list[str]]] = {
    "science": {
        "subject": ["the cell membrane", "a photon", "the enzyme", "the neutron star", "a glacier", "the virus",
                    "the catalyst", "the magnetic field", "the chromosome", "the ecosystem", "an electron",
                    "the volcano"],
        "verb": ["absorbs", "releases", "transforms", "regulates", "accelerates", "measures", "bends", "binds",
                 "stores", "emits"],
        "object": ["energy", "light", "heat", "protons", "glucose", "carbon dioxide", "water vapour", "radiation",
                   "genetic information", "kinetic energy", "oxygen", "sediment"],
        "setting": ["in the laboratory", "under high pressure", "during photosynthesis", "at low temperature",
                    "in the upper atmosphere", "inside the nucleus", "over geological time", "in a vacuum"],
    },
    "sports": {
        "subject": ["the striker", "the home team", "the goalkeeper", "the sprinter", "the coach", "the captain",
                    "the rookie", "the defending champion", "the midfielder", "the pitcher"],
        "verb": ["scored", "defended", "won", "lost", "missed", "celebrated", "trained for", "qualified for"],
        "object": ["the final", "a penalty", "the title", "the relay", "two goals", "the derby", "the semifinal",
                   "a home run", "the tournament", "the league"],
        "setting": ["in extra time", "before a sold-out crowd", "on a rainy night", "after the break",
                    "in the last minute", "at the away ground"],
    },
    "finance": {
        "subject": ["the central bank", "the retailer", "investors", "the bond market", "the startup",
                    "shareholders", "the insurer", "the currency", "analysts", "the pension fund"],
        "verb": ["raised", "cut", "reported", "forecast", "acquired", "sold", "hedged", "priced"],
        "object": ["interest rates", "quarterly profit", "its dividend", "new shares", "the merger",
                   "operating costs", "revenue guidance", "government bonds", "the stake"],
        "setting": ["amid inflation fears", "after the earnings call", "in early trading", "for the fiscal year",
                    "despite weak demand", "ahead of the vote"],
    },
    "cooking": {
        "subject": ["the chef", "the home cook", "the baker", "the recipe", "the sauce", "the dough",
                    "the stew", "the pastry", "the marinade"],
        "verb": ["simmers", "needs", "combines", "roasts", "whisks", "folds", "seasons", "bakes"],
        "object": ["garlic and thyme", "fresh basil", "the butter", "a pinch of salt", "the onions",
                   "brown sugar", "the egg whites", "olive oil", "the stock"],
        "setting": ["for twenty minutes", "over low heat", "until golden", "in a cast-iron pan",
                    "before serving", "overnight in the fridge"],
    },
    "travel": {
        "subject": ["the traveller", "the ferry", "the mountain village", "the night train", "the guide",
                    "the old harbour", "the hostel", "the coastal road", "the museum"],
        "verb": ["crosses", "overlooks", "connects", "welcomes", "reaches", "offers", "winds past"],
        "object": ["the fjord", "the old town", "two borders", "the island", "the vineyards", "the cathedral",
                   "the desert", "a quiet beach", "the market square"],
        "setting": ["at sunrise", "in the off season", "every summer", "after a long climb",
                    "by bicycle", "for a small fee"],
    },
}
DOMAIN_SHARES = {"science": 0.2, "sports": 0.25, "finance": 0.25, "cooking": 0.15, "travel": 0.15}
JUNK = [
    "click here subscribe now best deals click here subscribe now best deals",
    "lorem ipsum dolor sit amet lorem ipsum dolor sit amet",
    "#### $$$ !!! ### $$$ !!! ### $$$ !!!",
    "home | about | contact | privacy | terms | home | about | contact",
    "buy buy buy buy buy buy buy buy buy buy buy",
]


def _sentence(rng: random.Random, vocab: dict[str, list[str]]) -> str:
    words = [rng.choice(vocab[part]) for part in ("subject", "verb", "object", "setting")]
    sentence = " ".join(words)
    return sentence[0].upper() + sentence[1:] + "."


def demo_corpus(n_documents: int = 600, *, seed: int = 0) -> list[dict]:
    """``n_documents`` records ``{"id", "text", "source"}``; about 5% near-duplicates and 4% junk."""
    rng = random.Random(seed)
    names = list(DOMAIN_SHARES)
    weights = [DOMAIN_SHARES[name] for name in names]
    records: list[dict] = []
    n_junk = n_documents * 4 // 100
    n_dups = n_documents * 5 // 100
    for i in range(n_documents - n_junk - n_dups):
        domain = rng.choices(names, weights)[0]
        text = " ".join(_sentence(rng, DOMAINS[domain]) for _ in range(rng.randint(3, 7)))
        records.append({"id": f"doc-{i:05d}", "text": text, "source": domain})
    originals = records[: n_documents - n_junk - n_dups]  # one copy, not one per duplicate (1M documents: minutes)
    for j in range(n_dups):
        original = rng.choice(originals)
        words = original["text"].split()
        for _ in range(2):
            words[rng.randrange(len(words))] = rng.choice(["new", "big", "small", "late", "early"])
        records.append({"id": f"dup-{j:05d}", "text": " ".join(words), "source": original["source"]})
    for k in range(n_junk):
        records.append({"id": f"junk-{k:05d}", "text": rng.choice(JUNK), "source": "web"})
    rng.shuffle(records)
    return records


def demo_benchmark(n_examples: int = 40, *, seed: int = 1) -> list[dict]:
    """Science multiple-choice items ``{"id", "text"}`` written from the science vocabulary."""
    rng = random.Random(seed)
    vocab = DOMAINS["science"]
    items = []
    for i in range(n_examples):
        subject, verb = rng.choice(vocab["subject"]), rng.choice(vocab["verb"])
        choices = rng.sample(vocab["object"], 4)
        answer = rng.randrange(4)
        lines = [f"Q: Which of these {subject} {verb} {rng.choice(vocab['setting'])}?"]
        lines += [f"({'ABCD'[k]}) {choice}" for k, choice in enumerate(choices)]
        lines.append(f"A: ({'ABCD'[answer]}) {choices[answer]}")
        items.append({"id": f"sci-q-{i:04d}", "text": "\n".join(lines)})
    return items


def write_jsonl(records: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path
