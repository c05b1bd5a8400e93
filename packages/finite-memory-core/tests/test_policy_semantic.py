"""The semantic policy: BM25 + embeddings retrieval, its options, its index, and its persistence."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import pytest
from _core_helpers import filler
from _durable_helpers import fill, questions, same_context

from finite_memory import Memory
from finite_memory._terms import STOP_WORDS, stem, terms
from finite_memory.embedders import Embedder, HashingEmbedder
from finite_memory.policies._bm25 import BM25Index
from finite_memory.policies.semantic import Semantic


def chat(memory: Memory, facts: dict[int, str], turns: int = 40, date_every: int = 0) -> Memory:
    """``turns`` user/assistant turns of filler; ``facts[i]`` replaces the user line of turn ``i``."""
    for i in range(turns):
        meta = {"date_time": f"session {i // date_every + 1}"} if date_every else {}
        memory.add("user", facts.get(i, filler(i)), meta=meta)
        memory.add("assistant", f"I see, tell me more ({i}).", meta=meta)
    return memory


def turn_of(memory: Memory, needle: str) -> int:
    return next(t.number for t in memory.turns if needle in t.text)


def kept_turns(memory: Memory, query: str | None) -> set[int]:
    ctx = memory.context(query=query)
    ids = set(ctx.included)
    return {t.number for t in memory.turns if ids.intersection(t.ids)}


# -- text analysis, BM25, hashing embedder ---------------------------------------------


def test_terms_stem_inflections_and_drop_stop_words() -> None:
    assert {stem(w) for w in ("paint", "painted", "painting", "paints")} == {"paint"}
    assert stem("moving") == stem("moved") == stem("move")
    assert stem("running") == "run" and stem("cities") == "city" and stem("happily") == "happy"
    assert stem("class") == "class" and stem("bus") == "bus"  # no plural to strip
    assert stem("recommendations") == stem("recommended") and stem("rejection") == stem("rejected")
    assert stem("retirement") == stem("retired") and stem("nation") == "nation"  # 5 letters must be left
    assert terms("What did Caroline's sister do?") == ["carolin", "sister"]
    assert "the" in STOP_WORDS and not terms("the and of it")


def test_bm25_ranks_rare_terms_and_is_exact_after_removal() -> None:
    index = BM25Index(max_df=1.0)
    index.add(0, terms("the cat sat on the mat"))
    index.add(1, terms("a dog chased the cat"))
    index.add(2, terms("quantum physics lecture"))
    assert [doc for _, doc in index.search(terms("dog cat"), 10, 0, 10)] == [1, 0]
    assert index.search(terms("lecture"), 10, 0, 1) == []  # outside [lo, hi]
    assert index.search(terms("unknownword"), 10, 0, 10) == []
    fresh = BM25Index(max_df=1.0)
    fresh.add(0, terms("the cat sat on the mat"))
    fresh.add(2, terms("quantum physics lecture"))
    index.remove(1)
    index.remove(7)  # absent: no-op
    assert index.search(terms("cat lecture"), 10, 0, 10) == fresh.search(terms("cat lecture"), 10, 0, 10)
    assert len(index) == 2 and 1 not in index


def test_bm25_subtract_takes_back_what_was_added() -> None:
    index, fresh = BM25Index(max_df=1.0), BM25Index(max_df=1.0)
    index.add(1, ["kayak", "fjord", "kayak"])
    index.add(1, ["harbour", "kayak"])
    index.add(2, ["fjord"])
    fresh.add(1, ["harbour", "kayak"])
    fresh.add(2, ["fjord"])
    index.subtract(1, {"kayak": 2, "fjord": 1, "absent": 3})
    assert (index._postings, index._lengths, index._total) == (fresh._postings, fresh._lengths, fresh._total)
    index.subtract(2, {"fjord": 5})  # no more than it holds; the emptied document goes
    assert 2 not in index and "fjord" not in index._postings and index._total == 2


def test_a_reply_is_found_through_the_question_it_answers() -> None:
    memory = Memory("semantic", max_tokens=2000, reserve_output=0)
    for i in range(30):
        memory.add("user", filler(i))
        memory.add("assistant", f"I see, tell me more ({i}).")
    memory.add("user", "Which instrument did your grandfather leave you?")
    memory.add("assistant", "Noted.")
    memory.add("user", "The old cello, still in its case.")  # shares no word with the query below
    memory.add("assistant", "Lovely.")
    memory.add("user", "Anything else?")
    index = memory.policy._index  # type: ignore[attr-defined]
    hi = memory.turns[-2].number
    assert not index.bm25.search(terms("instrument grandfather"), 5, 0, hi)[1:]  # alone, BM25 finds the question only
    ranked = [n for _, n in index.rank("instrument grandfather", 0, hi, 2, 0.0)]
    assert ranked == [turn_of(memory, "instrument"), turn_of(memory, "cello")]


def test_bm25_skips_common_terms_and_bounds_the_postings_walk() -> None:
    index = BM25Index(max_postings=50, max_df=0.3)
    for doc in range(200):
        index.add(doc, ["common"] + (["rare"] if doc == 7 else []) + (["medium"] if doc % 3 == 0 else []))
    hits = index.search(["rare", "common"], 5, 0, 1000)
    assert hits[0][1] == 7 and len(hits) == 1  # "common" (in every doc) was never walked
    assert len(index.search(["common"], 300, 0, 1000)) == 50  # alone, it still ranks, within the bound
    index.max_df = 0.5  # "medium" is in a third of the docs
    walked = {doc for _, doc in index.search(["rare", "medium"], 300, 0, 1000)}
    medium = [doc for doc in range(200) if doc % 3 == 0]
    assert walked == {7, *medium[-49:]}  # past the bound, the newest postings of "medium" only


def test_hashing_embedder_is_unit_length_deterministic_and_lexical() -> None:
    embedder = HashingEmbedder()
    assert isinstance(embedder, Embedder) and embedder.dim == 256 and embedder.name == "hashing"
    a, b, c, empty = embedder.embed(
        ["My sister moved to Lisbon", "my sister is moving to lisbon", "quantum physics", ""]
    )
    assert math.isclose(sum(x * x for x in a), 1.0, rel_tol=1e-9)
    assert not any(empty)
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    assert dot > 0.8 > sum(x * y for x, y in zip(a, c, strict=True))
    assert embedder.embed(["My sister moved to Lisbon"])[0] == a  # same in every call and process (CRC-32)
    assert HashingEmbedder(dim=64).name is None  # not rebuilt by name alone
    for bad in ({"dim": 100}, {"dim": 8}, {"ngram": 1}):
        with pytest.raises(ValueError):
            HashingEmbedder(**bad)


# -- options ----------------------------------------------------------------------------


def test_finds_a_fact_far_back_that_sliding_loses() -> None:
    facts = {3: "My sister Agnes moved to Reykjavik last spring."}
    semantic = chat(Memory("semantic", max_tokens=300, reserve_output=0), facts)
    sliding = chat(Memory("sliding", max_tokens=300, reserve_output=0), facts)
    fact = turn_of(semantic, "Reykjavik")
    assert fact in kept_turns(semantic, "Where did my sister move?")
    assert fact not in kept_turns(sliding, "Where did my sister move?")
    ctx = semantic.context(query="Where did my sister move?")
    assert ctx.tokens <= 300 and ctx.tokens == semantic.tokenizer.count_messages(ctx.messages)


def test_no_query_is_a_sliding_window() -> None:
    memory = chat(Memory("semantic", max_tokens=300, reserve_output=0), {})
    sliding = chat(Memory("sliding", max_tokens=300, reserve_output=0), {})
    assert kept_turns(memory, None) == kept_turns(sliding, None)
    assert kept_turns(memory, "   ") == kept_turns(sliding, None)


def test_recent_turns_are_kept_first() -> None:
    facts = {2: "The password hint is a purple giraffe."}
    for recent in (0, 2):
        memory = chat(Memory("semantic", max_tokens=260, reserve_output=0, recent_turns=recent, neighbours=0), facts)
        kept = kept_turns(memory, "purple giraffe")
        newest_older = [t.number for t in memory.turns][-2:-1]  # the answered newest turn counts as one
        assert turn_of(memory, "giraffe") in kept
        assert set(newest_older) <= kept if recent == 2 else kept != set()


def test_neighbours_come_with_a_hit() -> None:
    facts = {10: "Let me tell you about the bakery on Elm street."}
    for neighbours, expected in ((0, set()), (1, {9, 11})):
        memory = chat(  # one candidate: the hit's neighbours, found through its words too, rank just below it
            Memory("semantic", max_tokens=400, reserve_output=0, neighbours=neighbours, recent_turns=0, candidates=1),
            facts,
        )
        kept = kept_turns(memory, "bakery Elm street")
        hit = turn_of(memory, "bakery")
        assert hit in kept
        assert {hit - 1, hit + 1} & kept == {hit + d for d in (-1, 1) if hit + d in {e for e in expected}}


def test_single_lines_are_packed_where_a_whole_turn_would_not_fit() -> None:
    facts = {i: f"The locker code for gym {i} is {1000 + i}." for i in (5, 15, 25)}
    memory = chat(Memory("semantic", max_tokens=2000, reserve_output=0, recent_turns=0, neighbours=0), facts)
    lines = [m for m in memory.messages if "locker code" in m.content]
    line_cost = max(memory._counter.message(m) for m in lines)
    turn_cost = min(memory.turns[turn_of(memory, m.content)].tokens(memory._counter) for m in lines)
    policy = memory.policy
    assert isinstance(policy, Semantic) and 3 * line_cost < 2 * turn_cost  # two whole turns cost more than 3 lines
    view_turns = memory.turns[:-1]
    from finite_memory.policies import PolicyInput

    view = PolicyInput(turns=view_turns, budget=3 * line_cost, query="locker code gym", counter=memory._counter)
    chosen = policy.wanted(view, 3 * line_cost, set())
    kept = [m for t in chosen for m in t.messages]
    assert sorted(m.id for m in kept) == sorted(m.id for m in lines)  # the three lines, not one and a half turns
    assert all(len(t.messages) == 1 and t.number == turn_of(memory, t.messages[0].content) for t in chosen)
    assert all(memory.turns[t.number].messages[0] is t.messages[0] for t in chosen)  # the archive's own messages


def test_the_lines_after_a_hit_come_before_the_lines_before_it() -> None:
    facts = {10: "Guess what: I finally repaired the old gramophone."}
    memory = chat(Memory("semantic", max_tokens=2000, reserve_output=0, recent_turns=0), facts)
    policy = memory.policy
    assert isinstance(policy, Semantic)
    from finite_memory.policies import PolicyInput

    view = PolicyInput(turns=memory.turns[:-1], budget=2000, query="gramophone repaired", counter=memory._counter)
    units = list(policy.retrieve(view))
    hit = turn_of(memory, "gramophone")
    assert units[0] == (1.0, (hit, 0))  # the matching line itself
    after = [u for v, u in units[1:3]]
    assert after == [(hit, 1), (hit + 1, 0)]  # its reply, then the next turn's first line
    values: dict[tuple[int, int | None], float] = {}
    for v, u in units:
        values.setdefault(u, v)  # a unit's first (highest) value
    assert values[(hit, 1)] == 0.5 and values[(hit - 1, 1)] == 0.25  # before it: a quarter per step


def test_a_turn_with_tool_calls_is_retrieved_whole() -> None:
    memory = Memory("semantic", max_tokens=2000, reserve_output=0, recent_turns=0)
    chat(memory, {}, turns=10)
    call = {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Quito"}'}}
    memory.add("user", "What is the weather in Quito?")
    memory.add("assistant", "", tool_calls=[call])
    memory.add("tool", "Quito: 14 C and drizzle.", tool_call_id="c1")
    memory.add("assistant", "It is 14 C and drizzling in Quito.")
    chat(memory, {}, turns=10)
    ctx = memory.context(query="Quito drizzle")
    quito = memory.turns[turn_of(memory, "weather in Quito")]
    assert set(quito.ids) <= set(ctx.included)  # the call, its result and the answer, all or nothing


def test_a_date_in_the_query_finds_that_session() -> None:
    facts = {i: f"I went to the pottery class again ({i})." for i in range(2, 40, 10)}
    memory = chat(Memory("semantic", max_tokens=2000, reserve_output=0), facts, date_every=10)
    index = memory.policy._index  # type: ignore[attr-defined]
    hi = memory.turns[-2].number
    ranked = index.rank("pottery class in session 3", 0, hi, 4, 0.0)
    assert ranked[0][1] == 22  # four pottery turns; the one in session 3 first
    undated = chat(Memory("semantic", max_tokens=2000, reserve_output=0, date_key=None), facts, date_every=10)
    assert not undated.policy._index.dated._docs  # type: ignore[attr-defined]
    index.remove(memory.turns[20:30])
    assert index.rank("pottery class in session 3", 0, hi, 4, 0.0)[0][1] != 22  # its date went with it


def test_match_measures_how_much_of_the_query_the_best_turn_holds() -> None:
    facts = {6: "My sister Odile adopted a three-legged cat named Biscuit."}
    memory = chat(Memory("semantic", max_tokens=2000, reserve_output=0), facts)
    index = memory.policy._index  # type: ignore[attr-defined]
    hi = memory.turns[-1].number
    full = index.match("Odile adopted a cat named Biscuit", 0, hi)
    half = index.match("Odile adopted Quetzalcoatl and Tlaloc", 0, hi)  # two words the archive never saw
    assert full > 0.8 and 0 < half < 0.5 * full
    assert index.match("zzz unknown words", 0, hi) == 0.0 and index.match("the and of", 0, hi) == 0.0


def test_mmr_lambda_trades_relevance_for_diversity() -> None:
    facts = {
        5: "Our kayak trip on the fjord was cold and windy.",
        6: "Our kayak trip on the fjord was cold and windy, really.",
        20: "The kayak club meets on Sundays by the harbour.",
    }
    query = "kayak trip fjord cold windy"
    orders = {}
    for lam in (1.0, 0.3):
        memory = chat(Memory("semantic", max_tokens=2000, reserve_output=0, mmr_lambda=lam, neighbours=0), facts)
        policy = memory.policy
        assert isinstance(policy, Semantic)
        view_turns = memory.turns
        ranked = policy._index.rank(query, view_turns[0].number, view_turns[-2].number, 10, 0.0)
        orders[lam] = list(policy._index.mmr(ranked, lam))
    assert set(orders[1.0][:2]) == {5, 6}  # the two near-duplicates rank first on relevance alone
    first, order = orders[0.3][0], orders[0.3]
    assert first in (5, 6) and order.index(20) < order.index(11 - first)  # with diversity, the other kayak turn first


def test_dates_open_each_run_of_turns_and_the_budget_stays_exact() -> None:
    facts = {3: "I adopted a greyhound called Pixel.", 30: "Pixel learned to fetch the frisbee."}
    memory = chat(Memory("semantic", max_tokens=500, reserve_output=0), facts, date_every=10)
    ctx = memory.context(query="greyhound Pixel frisbee")
    marks = [m.content.split("]")[0] + "]" for m in ctx.messages if m.content.startswith("[session ")]
    assert {"[session 1]", "[session 4]"} <= set(marks)  # the runs holding turns 3 and 30
    texts = [m.content for m in ctx.messages]
    run_start = max(
        i for i, t in enumerate(texts) if t.startswith("[") and i <= texts.index("I adopted a greyhound called Pixel.")
    )
    assert texts[run_start].startswith("[session 1]")
    assert memory.messages[6].content.startswith("I adopted")  # the archive is untouched
    assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages) <= 500
    dates = [m.content.split("]")[0] for m in ctx.messages if m.content.startswith("[")]
    assert all(a != b for a, b in itertools.pairwise(dates))  # one mark per run of one date
    plain = chat(Memory("semantic", max_tokens=500, reserve_output=0, date_key=None), facts, date_every=10)
    assert not any(m.content.startswith("[") for m in plain.context(query="greyhound Pixel frisbee").messages)


def test_a_part_of_a_turn_gets_its_own_date_mark() -> None:
    memory = chat(Memory("semantic", max_tokens=500, reserve_output=0), {}, turns=12, date_every=4)
    policy = memory.policy
    assert isinstance(policy, Semantic)
    from finite_memory._turns import Turn
    from finite_memory.policies import PolicyInput

    view = PolicyInput(turns=memory.turns, budget=500, query=None, counter=memory._counter)
    whole = memory.turns[5]
    for part in ([whole.messages[1]], [whole.messages[0]], whole.messages, [whole.messages[1]]):
        (marked,), _ = policy._marked_run([Turn(5, list(part))], view)
        assert [m.content for m in marked.messages] == [f"[session 2] {part[0].content}"] + [
            m.content for m in part[1:]
        ]


def test_dates_never_break_the_budget_even_when_tight() -> None:
    facts = {i: f"Fact number {i}: the blue whale sings." for i in range(0, 40, 3)}
    for budget in (64, 96, 150, 220):
        memory = chat(Memory("semantic", max_tokens=budget, reserve_output=0), facts, date_every=1)
        ctx = memory.context(query="blue whale sings")
        assert ctx.tokens == memory.tokenizer.count_messages(ctx.messages) <= budget


class CountingEmbedder:
    """Records every batch it embeds (a registered name, so options save)."""

    name = "hashing"
    fusion_weight = 1.0

    def __init__(self) -> None:
        self.inner = HashingEmbedder()
        self.dim = self.inner.dim
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.batches.append(list(texts))
        return self.inner.embed(texts)


def test_each_message_is_embedded_once_in_batches_and_each_query_once() -> None:
    embedder = CountingEmbedder()
    memory = chat(Memory(Semantic(embedder=embedder), max_tokens=300, reserve_output=0), {}, turns=50)
    archived = [m.content for m in memory.messages]
    memory.context(query="volcanoes documentary")
    memory.context(query="pasta")
    memory.add("user", "One more line about volcanoes.")
    memory.context(query="volcanoes")
    embedded = [text for batch in embedder.batches for text in batch]
    queries = ["volcanoes documentary", "pasta", "volcanoes"]
    assert sorted(embedded) == sorted([*archived, "One more line about volcanoes.", *queries])
    assert max(len(b) for b in embedder.batches) > 1  # archived messages go in batches


def test_embedder_given_by_name_instance_or_wrong() -> None:
    assert Memory("semantic", embedder="hashing").policy.options()["embedder"] == "hashing"
    named = Semantic(embedder=HashingEmbedder())
    assert named.options()["embedder"] == "hashing"
    unnamed = Semantic(embedder=HashingEmbedder(dim=64))
    with pytest.raises(TypeError, match="cannot be saved; give it by name"):
        unnamed.options()
    with pytest.raises(TypeError, match="embedder must be a registered embedder name or an object with dim"):
        Semantic(embedder=object())  # type: ignore[arg-type]
    from finite_memory import UnknownPluginError

    with pytest.raises(UnknownPluginError, match=r"installed embedders: .*hashing"):
        Semantic(embedder="nope")


def test_unnamed_embedder_cannot_be_saved_and_says_why(tmp_path: Path) -> None:
    memory = chat(Memory(Semantic(embedder=HashingEmbedder(dim=64)), max_tokens=300), {}, turns=3)
    with pytest.raises(TypeError, match="cannot be saved"):
        memory.save(tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize(
    "options",
    [
        {"recent_turns": -1},
        {"neighbours": 1.5},
        {"mmr_lambda": 2},
        {"candidates": 0},
        {"dense_pool": 0},
        {"dense_weight": -1},
        {"dense_weight": True},
        {"date_key": 3},
    ],
)
def test_bad_options_are_refused(options: dict[str, object]) -> None:
    with pytest.raises((ValueError, TypeError)):
        Memory("semantic", **options)


def test_dense_ranking_alone_when_no_query_word_is_indexed() -> None:
    memory = chat(Memory("semantic", max_tokens=260, reserve_output=0), {}, turns=20)
    memory.add("user", "We went snorkelling near the coral reef.")
    memory.add("assistant", "Snorkelling there sounds wonderful!")
    chat(memory, {}, turns=10)
    policy = memory.policy
    assert isinstance(policy, Semantic) and policy._dense_weight == 0.0  # the hashing embedder's fusion weight
    assert not policy._index.bm25.search(terms("snorkeler"), 5, 0, 100)
    # no query word is a word of the archive; the hashing embedder's character n-grams still match
    ranked = policy._index.rank("snorkeler", 0, memory.turns[-2].number, 3, 0.0)
    assert ranked[0][1] == turn_of(memory, "snorkelling near")


def test_dense_weight_fuses_the_embedding_ranking() -> None:
    facts = {4: "We went snorkelling near the coral reef.", 20: "The reef documentary was about coral bleaching."}
    memory = chat(Memory("semantic", max_tokens=260, reserve_output=0), facts)
    index = memory.policy._index  # type: ignore[attr-defined]
    query, hi = "coral reef snorkellers", memory.turns[-2].number
    index.flush()
    lexical = [n for _, n in index._lexical(terms(query), 0, hi)][:5]
    dense = [n for _, n in index._dense(query, range(hi + 1))]
    assert [n for _, n in index.rank(query, 0, hi, 5, 0.0)] == lexical  # weight 0: BM25 alone
    assert [n for _, n in index.rank(query, 0, hi, 2, 1000.0)] == dense[:2]  # a heavy weight: the embedding leads
    fused = index.rank(query, 0, hi, 40, 1.0)
    assert set(lexical) | set(dense[:10]) <= {n for _, n in fused}  # fusion keeps both rankings' hits
    assert fused == sorted(fused, key=lambda p: (-p[0], p[1]))


def test_dense_pool_bounds_the_turns_scored_by_embedding() -> None:
    embedder = CountingEmbedder()
    policy = Semantic(embedder=embedder, dense_pool=8)
    memory = chat(Memory(policy, max_tokens=300, reserve_output=0), {5: "zebra crossing"}, turns=60)
    memory.context(query="zebra")
    index = policy._index
    assert len(index._dense("zebra", (n for _, n in index.bm25.search(["zebra"], 8, 0, 59)))) <= 8
    assert index.rank("zebra", 0, 58, 4, 1.0)[0][1] == 5


# -- the index stays in step with the archive ------------------------------------------


def index_snapshot(policy: Semantic) -> tuple[object, ...]:
    index = policy._index
    index.flush()
    bm25, near = index.bm25, index.near
    return (
        bm25._postings,
        bm25._lengths,
        bm25._total,
        near._postings,
        near._lengths,
        near._total,
        sorted(index.turns),
        index.dates,
        {n: [round(x, 5) for x in v] for n, v in index._vectors.items()},
    )


def test_index_after_retention_equals_one_built_from_what_is_left() -> None:
    store = "memory://"
    from finite_memory.stores.memory import InMemoryStore

    capped = Memory("semantic", max_tokens=300, store=InMemoryStore(store, max_messages=30))
    chat(capped, {3: "My sister Agnes moved to Reykjavik."}, turns=40, date_every=7)
    assert len(capped) == 30
    rebuilt = Memory("semantic", max_tokens=300)
    for message in capped.messages:
        rebuilt.add(message.role, message.content, meta=message.meta)
    a, b = capped.policy, rebuilt.policy
    assert isinstance(a, Semantic) and isinstance(b, Semantic)
    offset = capped.turns[0].number - rebuilt.turns[0].number
    assert sorted(n - offset for n in a._index.turns) == sorted(b._index.turns)
    for index in ("bm25", "near"):  # the neighbours' words too: the evicted turn's are gone from the turn after it
        left, built = getattr(a._index, index), getattr(b._index, index)
        assert left._total == built._total
        assert {t: {d - offset: f for d, f in p.items()} for t, p in left._postings.items()} == built._postings
    assert not a._index.bm25.search(terms("Reykjavik"), 5, 0, 10**6)  # the evicted fact is gone


def test_removed_turns_leave_no_trace_even_when_still_queued_for_embedding() -> None:
    policy = Semantic()
    memory = chat(Memory(policy, max_tokens=300, reserve_output=0), {}, turns=5)
    first = list(memory.turns)[:2]
    assert policy._index._pending  # fewer than a batch: not embedded yet
    policy.on_remove(first)
    policy._index.flush()
    assert {t.number for t in first}.isdisjoint(policy._index._vectors)
    assert {t.number for t in first}.isdisjoint(policy._index.turns)


def test_checkpoint_and_sqlite_reopen_rebuild_the_same_index(tmp_path: Path) -> None:
    options = {"neighbours": 2, "mmr_lambda": 0.6, "recent_turns": 0}
    memory = fill(Memory("semantic", max_tokens=500, reserve_output=100, **options), sessions=6)
    memory.save(tmp_path / "m.json")
    back = Memory.load(tmp_path / "m.json")
    assert back.policy.options() == memory.policy.options()
    assert isinstance(back.policy, Semantic) and isinstance(memory.policy, Semantic)
    assert index_snapshot(back.policy) == index_snapshot(memory.policy)
    for q in questions(sessions=6):
        same_context(memory, back, q)
    url = f"sqlite:///{tmp_path}/s.db"
    live = fill(Memory("semantic", max_tokens=500, reserve_output=100, store=url, session="u", **options), sessions=6)
    again = Memory("semantic", max_tokens=500, reserve_output=100, store=url, session="u", **options)
    for q in questions(sessions=6):
        same_context(live, again, q)


@pytest.mark.parametrize("policy", ["semantic", "hybrid"])
def test_inside_a_chat_the_question_brings_back_its_fact(policy: str) -> None:
    from finite_memory import Chat
    from finite_memory.testing import EchoBackend

    backend = EchoBackend()
    memory = Memory(policy, max_tokens=300, reserve_output=50)
    chat = Chat(backend=backend, memory=memory)
    chat.send("My locker code is 4417, please remember it.")
    for i in range(40):
        chat.send(filler(i))
    chat.send("What is my locker code?")
    sent = backend.calls[-1]
    assert any("4417" in m.content for m in sent[:-1])  # retrieved from 40 turns back
    assert sent[-1].content == "What is my locker code?"
    # counted as the context was built (the reply's usage then recalibrates the tokenizer)
    assert chat.last_reply is not None and chat.last_reply.stats["context_tokens"] <= memory.budget
    assert len(memory) == 84


def test_an_embedder_returning_the_wrong_number_of_vectors_is_named() -> None:
    class Short(CountingEmbedder):
        def embed(self, texts: Sequence[str]) -> list[list[float]]:
            return super().embed(texts)[:-1]

    policy = Semantic(embedder=Short())
    memory = chat(Memory(policy, max_tokens=300, reserve_output=0), {}, turns=3)
    with pytest.raises(ValueError, match="embedder returned 5 vectors for 6 texts"):
        memory.context(query="pasta")
    assert len(policy._index._pending) == 6  # the batch stays queued for the next try


def test_a_query_over_empty_turns_finds_nothing_and_does_not_fail() -> None:
    # found by hypothesis: every archived message empty, so no document has a length
    for policy in ("semantic", "hybrid"):
        mem = Memory(policy=policy, max_tokens=256, reserve_output=32)
        for _ in range(6):
            mem.add("user", "")
        ctx = mem.context(query="0")
        assert ctx.tokens <= mem.budget and ctx.messages[-1].role == "user"
