"""A seeded generator of long synthetic conversations with planted facts, in LoCoMo's format.

Each conversation is chit-chat between two speakers over dated sessions; here and
there a speaker states a fact (a pet's name, a relative's move, a trip), and the
``qa`` list asks about those facts with their evidence turns, so what a memory keeps
can be measured with no download. Distractor lines reuse the facts' vocabulary, so
keyword overlap alone does not find the answer.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

_NAMES = ["Maya", "Tomas", "Priya", "Jonas", "Aiko", "Lucas", "Zara", "Emeka", "Ines", "Oskar", "Leila", "Mateo"]
_PETS = ["dog", "cat", "parrot", "rabbit", "turtle", "hamster"]
_PET_NAMES = ["Biscuit", "Juniper", "Mochi", "Pepper", "Ziggy", "Clementine", "Nacho", "Olive", "Rufus", "Sable"]
_RELATIVES = ["sister", "brother", "cousin", "aunt", "uncle", "grandmother"]
_CITIES = ["Lisbon", "Osaka", "Nairobi", "Montreal", "Tallinn", "Cusco", "Hobart", "Bergen", "Porto", "Quito"]
_JOBS = ["pharmacist", "glassblower", "air traffic controller", "cartographer", "beekeeper", "sound engineer"]
_HOBBIES = ["pottery", "bouldering", "salsa dancing", "birdwatching", "chess", "woodworking", "kayaking"]
_TOPICS = ["work", "the weather", "a new recipe", "a podcast", "the weekend", "a documentary", "the garden", "traffic"]
_FILLER = [
    "Honestly {topic} has been on my mind all week.",
    "Did you hear anything new about {topic}?",
    "I spent the evening thinking about {topic}, nothing special.",
    "Ha, that reminds me of {topic} last year.",
    "Not much to report, mostly {topic} and some rest.",
    "I keep meaning to read more about {topic}.",
    "We should talk about {topic} properly some time.",
    "That sounds lovely. For me it was mostly {topic}.",
]
_DISTRACTORS = [
    "I saw someone walking a {pet} by the river, it made me smile.",
    "A friend keeps sending me travel photos from {city}.",
    "My neighbour's {relative} used to be a {job}, funny coincidence.",
    "There was a documentary about {city} on TV last night.",
    "I read an article about {hobby} the other day.",
]


def _facts(rng: random.Random, speaker: str, other: str) -> list[dict[str, Any]]:
    pet, pet_name = rng.choice(_PETS), rng.choice(_PET_NAMES)
    relative, city = rng.choice(_RELATIVES), rng.choice(_CITIES)
    friend, job = rng.choice([n for n in _NAMES if n not in (speaker, other)]), rng.choice(_JOBS)
    hobby, trip = rng.choice(_HOBBIES), rng.choice([c for c in _CITIES if c != city])
    facts = [
        (
            [f"Big news: I adopted a {pet} and named it {pet_name}."],
            f"What is the name of {speaker}'s {pet}?",
            pet_name,
            4,
        ),
        (
            [f"My {relative} just told me they are moving to {city} for good."],
            f"Where is {speaker}'s {relative} moving?",
            city,
            4,
        ),
        ([f"I finally started {hobby} classes, twice a week."], f"What classes did {speaker} start?", hobby, 4),
        ([f"I just got back from a trip to {trip}."], f"When did {speaker} travel to {trip}?", None, 2),
        (
            [f"My oldest friend is {friend}, we met at school.", f"{friend} now works as a {job}, can you believe it?"],
            f"What is the job of {speaker}'s oldest friend?",
            job,
            1,
        ),
    ]
    return [
        {"speaker": speaker, "lines": lines, "question": question, "answer": answer, "category": category}
        for lines, question, answer, category in facts
    ]


def generate_conversation(
    seed: int = 0, sessions: int = 20, turns_per_session: int = 16, sample_id: str | None = None
) -> dict[str, Any]:
    """One conversation in LoCoMo's JSON format, the same for the same arguments.

    Ten facts (five per speaker) are planted at random turns; a temporal fact's answer
    is its session's date, a multi-hop fact spans two turns.
    """
    if sessions <= 0 or turns_per_session <= 0:
        raise ValueError("sessions and turns_per_session must be > 0")
    rng = random.Random(seed)
    speaker_a, speaker_b = rng.sample(_NAMES, 2)
    facts = _facts(rng, speaker_a, speaker_b) + _facts(rng, speaker_b, speaker_a)
    rng.shuffle(facts)
    total = sessions * turns_per_session
    starts = set(rng.sample(range(total), min(len(facts), total)))
    conversation: dict[str, Any] = {"speaker_a": speaker_a, "speaker_b": speaker_b}
    qa: list[dict[str, Any]] = []
    due: list[dict[str, Any]] = []
    active: dict[str, Any] | None = None
    evidence: list[str] = []
    date = datetime(2023, 1, 9, 14, 0) + timedelta(days=rng.randint(0, 300))
    index = 0
    for s in range(1, sessions + 1):
        date += timedelta(days=rng.randint(2, 12), hours=rng.randint(-3, 3))
        conversation[f"session_{s}_date_time"] = date.strftime("%-I:%M %p on %-d %B, %Y")
        turns = []
        for t in range(1, turns_per_session + 1):
            speaker = speaker_a if t % 2 else speaker_b
            dia_id = f"D{s}:{t}"
            if index in starts and facts:
                due.append(facts.pop())
            if active is None and due and due[0]["speaker"] == speaker:
                active, evidence = due.pop(0), []
            if active is not None and active["speaker"] == speaker:
                text = active["lines"].pop(0)
                evidence.append(dia_id)
                if not active["lines"]:
                    answer = active["answer"] or date.strftime("%-d %B %Y")
                    qa.append(
                        {
                            "question": active["question"],
                            "answer": answer,
                            "evidence": evidence,
                            "category": active["category"],
                        }
                    )
                    active = None
            elif rng.random() < 0.15:
                text = rng.choice(_DISTRACTORS).format(
                    pet=rng.choice(_PETS),
                    city=rng.choice(_CITIES),
                    relative=rng.choice(_RELATIVES),
                    job=rng.choice(_JOBS),
                    hobby=rng.choice(_HOBBIES),
                )
            else:
                text = rng.choice(_FILLER).format(topic=rng.choice(_TOPICS))
            turns.append({"speaker": speaker, "dia_id": dia_id, "text": text})
            index += 1
        conversation[f"session_{s}"] = turns
    return {"sample_id": sample_id or f"synthetic-{seed}", "conversation": conversation, "qa": qa}


def generate_dataset(conversations: int = 5, seed: int = 0, **options: Any) -> list[dict[str, Any]]:
    """Several conversations, seeded from ``seed`` (see :func:`generate_conversation`)."""
    return [
        generate_conversation(seed * 1000 + i, sample_id=f"synthetic-{seed}-{i}", **options)
        for i in range(conversations)
    ]
