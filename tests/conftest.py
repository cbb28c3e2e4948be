import os
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))

# Data files beside the project (../shared); the lyric vocab is never shipped in the pack.
SHARED = TESTS.parents[1] / "shared"
_VOCAB = SHARED / "reference" / "data" / "ace_v1_lyrics_vocab.json"
if "ACEFORGE_LYRICS_VOCAB" not in os.environ and _VOCAB.exists():
    os.environ["ACEFORGE_LYRICS_VOCAB"] = str(_VOCAB)
