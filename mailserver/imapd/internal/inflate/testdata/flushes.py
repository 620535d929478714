#!/usr/bin/env python3
"""Writes flushes.json: DEFLATE streams cut by Python's zlib with each flush mode.

Each stream compresses a list of chunks, flushing after every chunk, then ends with
Z_FINISH. The test feeds a stream chunk by chunk and expects each chunk's plaintext
before the next chunk's bytes arrive. Regenerate with:
    python3 testdata/flushes.py > testdata/flushes.json
"""
import base64, json, random, zlib

rng = random.Random(4978)
words = "the quick brown fox jumps over lazy dog mail inbox folder message flags seen".split()

def text(n):
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(rng.choice(words))
    return " ".join(out).encode()[:n]

# What an IMAP client sends: short commands, a literal, a repeated command the compressor
# codes as a match against an earlier chunk.
imap = [b"a%d UID FETCH 1:* (FLAGS)\r\n" % i for i in range(1, 11)]
imap += [b"a11 APPEND INBOX {40}\r\n", b"Subject: hi\r\n\r\n" + b"x" * 25, b"\r\n", b"a12 NOOP\r\n", b"A"]
# Larger and odd pieces: one byte, text, bytes that do not compress (stored blocks),
# text that repeats an earlier chunk (matches across flushes), a long run.
mixed = [b"x", text(3000), bytes(rng.getrandbits(8) for _ in range(1500)), b"", text(200)]
mixed += [mixed[1][:1000], b"z" * 2000, text(40)]

sets = {"imap": imap, "mixed": mixed}
modes = {"sync": zlib.Z_SYNC_FLUSH, "partial": zlib.Z_PARTIAL_FLUSH, "full": zlib.Z_FULL_FLUSH}
# (level, strategy): stored blocks, fast and best dynamic blocks, fixed blocks, literals only.
settings = [(0, zlib.Z_DEFAULT_STRATEGY), (1, zlib.Z_DEFAULT_STRATEGY), (9, zlib.Z_DEFAULT_STRATEGY),
            (6, zlib.Z_FIXED), (6, zlib.Z_HUFFMAN_ONLY)]

b64 = lambda b: base64.b64encode(b).decode()
streams = []
for name, chunks in sets.items():
    for mode, flush in modes.items():
        for level, strategy in settings:
            z = zlib.compressobj(level, zlib.DEFLATED, -15, 8, strategy)
            streams.append({
                "set": name, "mode": mode, "level": level, "strategy": strategy,
                "compressed": [b64(z.compress(c) + z.flush(flush)) for c in chunks],
                "finish": b64(z.flush(zlib.Z_FINISH)),
            })
print(json.dumps({"zlib": zlib.ZLIB_RUNTIME_VERSION,
                  "plain": {k: [b64(c) for c in v] for k, v in sets.items()},
                  "streams": streams}, indent=1))
