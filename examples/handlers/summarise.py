#!/usr/bin/env python3
"""summarise.py: a topicflow exec handler that summarises one topic, offline.

Run it per topic with:

    topicflow run --workers 2 --concurrency 10 \
        --handler 'exec:python3 examples/handlers/summarise.py' examples/topics.txt

The exec contract (docs/handlers.md):
  stdin               the topic's payload (a line of a text file, or a JSONL `payload`)
  TOPICFLOW_JOB, TOPICFLOW_KEY, TOPICFLOW_ATTEMPT   in the environment (optional here, so
                      `echo 'some title' | python3 summarise.py` works by hand)
  stdout              the result stored in the `result` column: one line of JSON
  exit 0              completed
  exit 75             retryable failure (EX_TEMPFAIL): the sink retries with backoff
  exit 1 (any other)  permanent failure; the end of stderr becomes the topic's `error`

What it does: normalises the text (Unicode NFKC, whitespace collapsed), counts words, picks
keywords (most frequent words that are not stop words, longer first on ties) and prints a
small JSON summary. A payload that is a JSON object contributes its string values (`title`
and `text` first); a JSON string contributes itself.

Bad input is a permanent failure with a one-line reason on stderr: an empty or blank payload,
bytes that are not UTF-8, a payload with no words, or one larger than SUMMARISE_MAX_BYTES
(default 1 MiB).

Simulated transient trouble (for trying retries; off unless asked for):
  SUMMARISE_TEMPFAIL_ATTEMPTS=N   attempts 1..N of every topic exit 75
  SUMMARISE_TEMPFAIL_RATE=P       each attempt exits 75 with probability P (0..1)
  SUMMARISE_STARTUP_MS=N          sleep N ms before anything else (a slow import, a model load;
                                  bench/exec_modes compares exec: and exec-persistent: with it)

summarise_server.py is the same handler as a persistent co-process (exec-persistent:).
"""

import json
import os
import random
import re
import sys
import time
import unicodedata
from collections import Counter

EX_TEMPFAIL = 75
KEYWORDS = 3

STOP_WORDS = frozenset(
    """a about after against all an and any are as at be because been before being between both
    but by can could did do does doing down during each few for from further had has have having
    he her here hers him his how i if in into is it its itself just me more most my no nor not of
    off on once only or other our out over own same she should so some such than that the their
    them then there these they this those through to too under until up very was we were what when
    where which while who whom why will with would you your versus vs via without within""".split()
)

WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


class BadInput(ValueError):
    """Input that will never summarise (a permanent failure)."""


def fail(message, code=1):
    """One line on stderr (it becomes the topic's `error`), then exit."""
    key = os.environ.get("TOPICFLOW_KEY")
    where = f" (key {key!r})" if key else ""
    print(f"summarise: {message}{where}", file=sys.stderr)
    sys.exit(code)


def env_number(name, kind, default, low, high):
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        fail(f"{name}={raw!r} is not a number")
    if not low <= value <= high:
        fail(f"{name}={raw!r} is outside {low}..{high}")
    return value


def simulated_tempfail():
    attempt = env_number("TOPICFLOW_ATTEMPT", int, 1, 1, 2**32)
    fail_attempts = env_number("SUMMARISE_TEMPFAIL_ATTEMPTS", int, 0, 0, 1000)
    if attempt <= fail_attempts:
        fail(f"simulated transient failure on attempt {attempt} of {fail_attempts} asked for", EX_TEMPFAIL)
    rate = env_number("SUMMARISE_TEMPFAIL_RATE", float, 0.0, 0.0, 1.0)
    if rate > 0 and random.random() < rate:
        fail(f"simulated transient failure (SUMMARISE_TEMPFAIL_RATE={rate})", EX_TEMPFAIL)


def text_of(payload):
    """The text to summarise: the payload itself, or the strings inside a JSON payload."""
    stripped = payload.strip()
    if not stripped or stripped[0] not in '{["':
        return payload
    try:
        value = json.loads(stripped)
    except ValueError:
        return payload  # text that merely starts like JSON
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        first = [value[k] for k in ("title", "text") if isinstance(value.get(k), str)]
        rest = [v for k, v in value.items() if k not in ("title", "text") and isinstance(v, str)]
        return "\n".join(first + rest)
    if isinstance(value, list):
        return "\n".join(v for v in value if isinstance(v, str))
    return payload


def summarise(text):
    normalised = " ".join(unicodedata.normalize("NFKC", text).split())
    words = [w.lower() for w in WORD.findall(normalised)]
    if not words:
        raise BadInput("payload has no words to summarise")
    counts = Counter(w for w in words if w not in STOP_WORDS and len(w) > 1)
    first_seen = {}
    for i, w in enumerate(words):
        first_seen.setdefault(w, i)
    keywords = sorted(counts, key=lambda w: (-counts[w], -len(w), first_seen[w]))[:KEYWORDS]
    return {
        "title": normalised[:200],
        "words": len(words),
        "unique_words": len(set(words)),
        "characters": len(normalised),
        "keywords": keywords,
        "slug": "-".join(words)[:80].strip("-"),
    }


def main():
    time.sleep(env_number("SUMMARISE_STARTUP_MS", int, 0, 0, 600000) / 1000)
    simulated_tempfail()
    limit = env_number("SUMMARISE_MAX_BYTES", int, 1 << 20, 1, 1 << 30)
    raw = sys.stdin.buffer.read(limit + 1)
    if len(raw) > limit:
        fail(f"payload is larger than {limit} bytes (SUMMARISE_MAX_BYTES)")
    if not raw.strip():
        fail("empty payload: nothing to summarise")
    try:
        payload = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        fail(f"payload is not valid UTF-8 (byte {e.start})")
    try:
        summary = summarise(text_of(payload))
    except BadInput as e:
        fail(str(e))
    key = os.environ.get("TOPICFLOW_KEY")
    if key is not None:
        summary = {"key": key, **summary}
    json.dump(summary, sys.stdout, ensure_ascii=False, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
