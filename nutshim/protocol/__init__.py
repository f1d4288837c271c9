# -*- test-case-name: nutshim.test.test_tokenizer -*-
"""
The NUT protocol without I/O: words, requests, replies and error names.

Nothing here imports Twisted (a test enforces it), so the daemon, the shims,
the client and the tests share one definition of the wire format.
"""

from nutshim.protocol._tokenizer import (
    MAX_WORD_LENGTH,
    MAX_WORDS,
    ParseError,
    RequestTokenizer,
    encode,
    join_words,
    quote,
    tokenize_file,
)
from nutshim.protocol.commands import USER_VERBS, Request, parse_request
from nutshim.protocol.errors import NutError

__all__ = [
    "MAX_WORDS",
    "MAX_WORD_LENGTH",
    "ParseError",
    "RequestTokenizer",
    "encode",
    "join_words",
    "quote",
    "tokenize_file",
    "USER_VERBS",
    "Request",
    "parse_request",
    "NutError",
]
