"""Decontamination on real data: GSM8K test items planted in the BBC News corpus (in memory only;
benchmark texts never enter the repository), checked against datatrove's n-gram filter and a
plain reference implementation, and the semantic pass against the FAISS store."""
from __future__ import annotations

import random
import re

import numpy as np
import pytest

from curation.decontamination import NgramIndex, normalise_words, semantic_matches, store_matches
from curation.stores import build_store
from tests.shared import cached_embeddings, load_jsonl, shared_path

PLANTS = 50


def edit(text: str, rng: random.Random) -> str:
    """A light edit: one sentence removed (or one added), commas and question marks changed,
    doubled spaces, and the whole text upper- or lower-cased."""
    sentences = re.split(r"(?<=[.?!])\s+", text)
    if len(sentences) > 3 and rng.random() < 0.5:
        del sentences[rng.randrange(1, len(sentences))]
    else:
        sentences.insert(rng.randrange(len(sentences) + 1), "We went over this one in class on Monday.")
    text = "  ".join(sentences).replace(",", " ;").replace("?", " ?!")
    return text.upper() if rng.random() < 0.5 else text.lower()


@pytest.fixture(scope="module")
def planted():
    """(clean BBC texts, GSM8K texts, 50 verbatim plants, 50 edited plants, the item of each plant)."""
    bbc = [r["text"] for r in load_jsonl(shared_path("corpora/bbc_news.jsonl"))]
    gsm = [r["text"] for r in load_jsonl(shared_path("benchmarks/gsm8k_test.jsonl"))]
    rng = random.Random(0)
    items = rng.sample(range(len(gsm)), 2 * PLANTS)
    verbatim = [gsm[i] for i in items[:PLANTS]]
    edited = [edit(gsm[i], rng) for i in items[PLANTS:]]
    return bbc, gsm, verbatim, edited, items


def test_normalised_words_are_datatrove_simplify_text_split():
    simplify_text = pytest.importorskip("datatrove.utils.text").simplify_text
    config = pytest.importorskip("datatrove.utils.text").TextNormConfig(norm_numbers=False)
    bbc = [r["text"] for r in load_jsonl(shared_path("corpora/bbc_news.jsonl"))]
    # "£" is no punctuation to datatrove (a separator here): compare where the texts have none
    texts = [t for t in bbc if "£" not in t and "$" not in t][:400]
    assert len(texts) == 400
    for text in texts:
        assert normalise_words(text) == simplify_text(text, config).split()


def test_ngram_finds_every_plant_and_no_clean_document(planted):
    bbc, gsm, verbatim, edited, items = planted
    index = NgramIndex.build(gsm)
    assert index.too_short == 0 and index.grams > 100_000
    inside = [bbc[i] + "\n\n" + gsm[items[i]] for i in range(10)]  # an item quoted at the end of an article
    documents = bbc + verbatim + edited + inside
    found = {m.document: m for m in index.find(documents)}
    n = len(bbc)
    verbatim_found = sum(n + i in found for i in range(PLANTS))
    edited_found = sum(n + PLANTS + i in found for i in range(PLANTS))
    false_positives = sum(i in found for i in range(n))
    print(f"n-gram: verbatim {verbatim_found}/{PLANTS}, edited {edited_found}/{PLANTS}, "
          f"clean BBC flagged {false_positives}/{n}")
    assert verbatim_found == PLANTS
    assert edited_found >= 0.95 * PLANTS  # measured 50/50
    assert false_positives <= 0.005 * n  # measured 0 of 2,225
    assert all(n + 2 * PLANTS + i in found for i in range(10))
    for j, item in enumerate(items):
        match = found[n + j]
        assert match.item == item
        assert match.span in " ".join(normalise_words(gsm[item])) and len(match.span.split()) == 13


def test_ngram_matches_datatrove_decontamination_on_the_same_input(planted, tmp_path):
    """datatrove's NGramsDecontFilter over an index of the same 13-gram hashes (its own
    normalisation, n-grams and sha1 hashing; numbers kept, as here; words split on whitespace
    after simplify_text, since its English tokenizer needs NLTK data that is not installed)."""
    decont = pytest.importorskip("datatrove.pipeline.decont.n_grams")
    from datatrove.data import Document
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.text import TextNormConfig, ngrams, simplify_text
    from datatrove.utils.word_tokenizers import WordTokenizer

    class Whitespace(WordTokenizer):
        def word_tokenize(self, text):
            return text.split()

        def sent_tokenize(self, text):
            return [text]

        def span_tokenize(self, text):
            return [(0, len(text))]

    bbc, gsm, verbatim, edited, _ = planted
    config = decont.NGramsDecontConfig(n_grams=13, norm_config=TextNormConfig(norm_numbers=False),
                                       hash_config=HashConfig(hash_fc="sha1"))
    hash_of = create_hash_func(config.hash_config)
    hashes = {hash_of(" ".join(g)) for text in gsm
              for g in ngrams(simplify_text(text, config.norm_config).split(), config.n_grams)}
    np.array(sorted(hashes), dtype=config.hash_config.np_descr).tofile(tmp_path / "gsm8k.index.hashes")
    reference = decont.NGramsDecontFilter(str(tmp_path), config=config, language=Whitespace("en"))

    texts = [t for t in bbc if "£" not in t and "$" not in t] + verbatim + edited
    theirs = {i for i, text in enumerate(texts) if reference.filter(Document(text=text, id=str(i))) is not True}
    ours = {m.document for m in NgramIndex.build(gsm).find(texts)}
    assert len(theirs) >= 2 * PLANTS - 1
    assert ours == theirs


def _reference_contaminated(documents, items, n, min_words):
    """The definition, directly: a set of word tuples per example length, every window of every document."""
    grams = set()
    for item in items:
        words = normalise_words(item)
        length = min(n, len(words))
        if length >= min(n, min_words):
            grams.update(tuple(words[i:i + length]) for i in range(len(words) - length + 1))
    lengths = {len(g) for g in grams}
    found = set()
    for d, document in enumerate(documents):
        words = normalise_words(document)
        if any(tuple(words[i:i + length]) in grams for length in lengths for i in range(len(words) - length + 1)):
            found.add(d)
    return found


def test_short_examples_match_their_whole_words_like_the_reference(planted):
    bbc, gsm, _, _, items = planted
    rng = random.Random(1)
    # short examples of 5 to 12 words (the question's opening), half of them planted in articles
    short = [" ".join(gsm[i].split()[: rng.randrange(5, 13)]) for i in items[:40]]
    documents = bbc[:600] + [bbc[600 + i] + " " + short[i] for i in range(0, 40, 2)]
    index = NgramIndex.build(short, n=13, min_words=8)
    ours = {m.document for m in index.find(documents)}
    assert index.too_short == sum(len(normalise_words(s)) < 8 for s in short) > 0
    assert ours == _reference_contaminated(documents, short, 13, 8)
    planted_long = {600 + i // 2 for i in range(0, 40, 2) if len(normalise_words(short[i])) >= 8}
    assert planted_long and planted_long <= ours


@pytest.fixture(scope="module")
def embedded(planted):
    """minilm embeddings of the BBC corpus (cached on disk), the GSM8K items and the plants."""
    from curation.embedders import get_embedder

    bbc, gsm, verbatim, edited, _ = planted
    embedder = get_embedder("minilm")
    return (cached_embeddings(shared_path("corpora/bbc_news.jsonl")),
            cached_embeddings(shared_path("benchmarks/gsm8k_test.jsonl")),
            embedder.encode(verbatim + edited))


@pytest.mark.real_embeddings("corpora/bbc_news.jsonl", "benchmarks/gsm8k_test.jsonl")
def test_semantic_pass_finds_the_edited_plants_exactly_and_through_the_store(planted, embedded, tmp_path):
    bbc, gsm, _, _, items = planted
    clean, targets, plants = embedded
    documents = np.concatenate([clean, plants]).astype(np.float32)
    near = semantic_matches(documents, targets, 0.9)
    found = dict(zip(near.document.tolist(), near.item.tolist()))
    n = len(bbc)
    edited_found = sum(n + PLANTS + i in found for i in range(PLANTS))
    false_positives = sum(i in found for i in range(n))
    print(f"semantic (minilm, cos >= 0.9): verbatim {sum(n + i in found for i in range(PLANTS))}/{PLANTS}, "
          f"edited {edited_found}/{PLANTS}, clean BBC flagged {false_positives}/{n}")
    assert all(found.get(n + i) == items[i] for i in range(PLANTS))
    assert edited_found >= 0.95 * PLANTS
    assert false_positives <= 0.005 * n

    # the same documents through a flat FAISS store (two shards), and an IVF store
    for name, part in (("a", documents[:1200]), ("b", documents[1200:])):
        np.save(tmp_path / f"{name}.npy", part.astype(np.float16))
    paths = [tmp_path / "a.npy", tmp_path / "b.npy"]
    flat = store_matches(build_store(paths, tmp_path / "flat", kind="flat"), targets, 0.9, k=4)
    exact16 = semantic_matches(np.concatenate([np.load(p) for p in paths]).astype(np.float32), targets, 0.9)
    np.testing.assert_array_equal(flat.document, exact16.document)
    np.testing.assert_array_equal(flat.item, exact16.item)
    np.testing.assert_allclose(flat.similarity, exact16.similarity, atol=1e-5)
    ivf = store_matches(build_store(paths, tmp_path / "ivf", kind="ivf_sq8", nlist=16), targets, 0.9)
    assert len(set(ivf.document.tolist()) & set(exact16.document.tolist())) >= 0.95 * len(exact16.document)
