"""Secrets out of audit records: by field, never by pattern inside evidence.

References, digests, sources and names are evidence and are recorded byte for byte, whatever
they look like (an image tag may read `AKIAIOSFODNN7EXAMPLE`, a repository `team/token-svc`):
a pattern that rewrote them would let whoever picks a name rewrite the evidence. Removed are:
  - values under secret-named keys (`password`, `apiToken`, `Authorization`, ...);
  - in free-text fields only (error, message, detail, warnings, hint): bearer and basic
    credentials, URL userinfo passwords, PEM private keys;
  - the userinfo password of a URI in a `reference` (a storage URI with credentials in it):
    a credential by the URI's structure, so it is found by parsing the URI, and only the
    password is replaced.
Every redaction is listed in the record's `redactions` ([{"field", "kind"}]), so an auditor
knows which recorded values are not the ones received.

Free text echoes request values, so every scan here is linear in the text: anchors found with
`find`, then single character-class runs matched from a fixed position (never a pattern
that can retry one long run from many starting points: 80 KB of `-a-a-a…@` took the old
`\\b[a-z][a-z0-9+.-]*://…@` regex 22 s, holding the GIL).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

REDACTED = "[redacted]"
FREE_TEXT_KEYS = frozenset({"error", "message", "detail", "warnings", "hint"})
_SECRET_NAMES = ("password", "passwd", "passphrase", "secret", "secrets", "token", "tokens", "authorization", "credential", "credentials",
                 "privatekey", "apikey", "cookie")
_NOT_NAME = re.compile(r"[^a-z0-9]")
# Single-class patterns only, each matched from a known position: linear, and short-lived in C
# (a scan of megabytes inside one regex call would hold the GIL all along).
_AUTH_WORDS = (b"bearer", b"basic")
_SPACES = re.compile(r"\s*")
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]*")
_USERINFO = re.compile(r"[^/@\s\"']*")  # what may stand between `scheme://` and `@`
_SCHEME_CHARACTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_SCHEME_MAX = 32  # the longest scheme looked for before `://` (real ones are far shorter)
_TOKEN_MARKS = (" ", '"', "'")  # what ends a URI quoted in free text (tabs and newlines do not: URL readers drop them)
_TOKEN_REST = re.compile(r"[^ \"']*")
_PEM_LABEL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ ")
_PEM_LABEL_MAX = 64
_TOKEN_CHARACTERS = frozenset("0123456789._~+/=-")


def is_secret_key(key: str) -> bool:
    """`apiToken`, `client_secret`, `Authorization`, `password`... (whole-word endings, so
    `secretCount` or `passthrough` are not)."""
    return _NOT_NAME.sub("", key.lower()).endswith(_SECRET_NAMES)


# Every secret name holds one of these, and the credential words of free text are two of them:
# a record whose letters hold none has no field `redact` would clear by name or by `Bearer …`.
_LETTER_NEEDLES = (b"pass", b"secret", b"token", b"authorization", b"credential", b"privatekey", b"apikey", b"cookie", *_AUTH_WORDS)
# Digits go too: no needle holds one, so dropping them only joins letters (a false alarm at worst),
# and digests and ids are mostly digits.
_NOT_LETTER = bytes(c for c in range(256) if not 0x61 <= c <= 0x7A)
# The escapes canonical JSON writes: quotes, backslashes and control characters, none of them a
# letter, so each reads as a space. Any other `\u` escape could spell a letter.
_NON_ALNUM_ESCAPE = re.compile(rb"\\(?:u00[01][0-9a-fA-F]|[^u])")
_MAX_AT_SIGNS = 32  # strings with an `@` looked at by the pre-check; past this the walk decides


def _may_hold_a_uri(encoded: bytes) -> bool:
    """Does a string of these canonical JSON bytes that holds an `@` hold a URI password, read
    as the walk reads it (as a `reference`, or as free text)? The same functions decide, on the
    few strings with an `@` (more than _MAX_AT_SIGNS: the walk decides)."""
    if encoded.count(b"@") > _MAX_AT_SIGNS:
        return True
    at = encoded.find(b"@")
    while at >= 0:
        opening, closing = _unescaped_quote(encoded, at, -1), _unescaped_quote(encoded, at, 1)
        string = encoded[opening:closing + 1]
        text = json.loads(string) if b"\\" in string else string[1:-1].decode("utf-8", "replace")
        if _holds_uri_password(text):
            return True
        at = encoded.find(b"@", closing)
    return False


def _unescaped_quote(encoded: bytes, at: int, step: int) -> int:
    """The quote before (step -1) or after (+1) `at` that opens or closes its string."""
    quote = encoded.rfind(b'"', 0, at) if step < 0 else encoded.find(b'"', at)
    while quote > 0:
        run = quote
        while encoded[run - 1] == 0x5C:  # backslashes: an odd run escapes the quote
            run -= 1
        if (quote - run) % 2 == 0:
            return quote
        quote = encoded.rfind(b'"', 0, quote) if step < 0 else encoded.find(b'"', quote + 1)
    return quote


def _holds_uri_password(text: str) -> bool:
    """As a `reference` or as free text: what the walk would redact."""
    return without_uri_password(text) is not None or _scrub_uris(text, []) != text


def may_need_redaction(encoded: bytes, *, keys_from_code: bool = False) -> bool:
    """Could `redact` change the record these canonical JSON bytes encode? False only when it
    cannot, so the common record skips the walk: no string with an `@` holding a URI password
    (`_may_hold_a_uri`), no private key, and none of the
    needles above among its letters, folded and joined as `is_secret_key` joins a key (so
    `api.key`, `to-ken` or `tok\\u0000en` are still found). A false alarm only costs the
    walk. One C pass per needle over the record's letters. `keys_from_code`: every key of the
    record is written in modelsign's code, none secret-named (a decision record), so only the
    free-text credential words are looked for among its letters."""
    if b"PRIVATE KEY-----" in encoded or (b"@" in encoded and _may_hold_a_uri(encoded)):
        return True
    if b"\\" in encoded:
        encoded = _NON_ALNUM_ESCAPE.sub(b" ", encoded)
        if b"\\u" in encoded:
            return True  # not written by canonical_json; the walk decides
    # lower() of text folds a few other letters into ASCII ones (the Kelvin sign into k), as
    # is_secret_key's lower() does; what is left that is not ASCII is no letter there.
    folded = encoded.lower() if encoded.isascii() else encoded.decode("utf-8", "replace").lower().encode("ascii", "ignore")
    letters = folded.translate(None, _NOT_LETTER)
    for needle in _AUTH_WORDS if keys_from_code else _LETTER_NEEDLES:
        if needle in letters:
            return True
    return False


def _looks_like_credential(scheme: str, token: str) -> bool:
    """A bearer token or basic credential, not a word ("Basic authentication failed")."""
    if scheme.lower() == "basic":
        try:
            if b":" in base64.b64decode(token + "=" * (-len(token) % 4), validate=True):
                return True
        except (binascii.Error, ValueError):
            pass
    return any(c in _TOKEN_CHARACTERS for c in token)


def scrub_text(text: str) -> tuple[str, list[str]]:
    """Free text with credential shapes replaced; and the kinds that were."""
    kinds: list[str] = []
    text = _scrub_uris(_scrub_auth(text, kinds), kinds)
    if "PRIVATE KEY-----" in text:
        text = _scrub_private_keys(text, kinds)
    return text, kinds


def _auth_words(text: str) -> list[tuple[int, int]]:
    """(start, end) of each `bearer` / `basic`, in any case, that starts a word and is followed
    by white space, in text order."""
    folded = text.encode("ascii", "replace").lower()  # one byte per character: its positions are the text's
    found = []
    for word in _AUTH_WORDS:
        start = folded.find(word)
        while start >= 0:
            end = start + len(word)
            before = text[start - 1] if start else " "
            if end < len(text) and text[end].isspace() and not (before.isalnum() or before == "_"):
                found.append((start, end))
            start = folded.find(word, end)
    return sorted(found)


def _scrub_auth(text: str, kinds: list[str]) -> str:
    """`Bearer <token>` / `Basic <credential>` (a token of 8 or more characters) -> `Bearer [redacted]`."""
    out: list[str] = []
    kept = consumed = 0
    for start, end in _auth_words(text):
        if start < consumed:
            continue  # inside the token after an earlier word
        token_start = _SPACES.match(text, end).end()  # type: ignore[union-attr]
        token_end = _TOKEN.match(text, token_start).end()  # type: ignore[union-attr]
        if token_end - token_start < 8:
            continue
        consumed = token_end
        if _looks_like_credential(text[start:end], text[token_start:token_end]):
            kinds.append(f"{text[start:end].lower()} credential")
            out += (text[kept:token_start], REDACTED)
            kept = token_end
    return "".join(out) + text[kept:] if out else text


def _scrub_uris(text: str, kinds: list[str]) -> str:
    """URI passwords in free text: after each `://` (a scheme up to 32 characters back, so also
    inside a token: `url=https://u:p@h`), then in each token that is a URI as lenient readers
    take it, also without `://`."""
    if "@" not in text:
        return text
    if "://" in text:
        text = _scrub_userinfo(text, kinds)
    return _scrub_lenient_uris(text, kinds)


def _scrub_userinfo(text: str, kinds: list[str]) -> str:
    """`scheme://user:password@` -> `scheme://user:[redacted]@`: from each `://`, the userinfo
    run after it (it cannot hold `/`, so it ends before the next `://` does) and the scheme
    before it (at most _SCHEME_MAX characters back)."""
    out: list[str] = []
    kept = 0
    separator = text.find("://")
    while separator >= 0:
        start = separator + 3
        end = _USERINFO.match(text, start).end()  # type: ignore[union-attr]
        colon = text.find(":", start, end)
        if (end < len(text) and text[end] == "@" and 0 <= colon < end - 1 and _scheme_before(text, separator)
                and not _DIGEST_HOST.match(text, end + 1)):
            kinds.append("URL password")
            out += (text[kept:colon + 1], REDACTED)
            kept = end
        separator = text.find("://", max(end - 1, start))  # a `://` may start on the run's last character
    return "".join(out) + text[kept:] if out else text


def _scrub_lenient_uris(text: str, kinds: list[str]) -> str:
    """Tokens (runs between spaces and quotes) that lenient URL readers take for a URI with a
    password, also without a literal `://` (`https:\\\\u:p@h`, `https:u:p@h`, `//u:p@h`,
    `https:/<tab>/u:p@h`): the password removed as in a `reference` (a message quotes the
    reference it is about). Each token is found with find/rfind bounded by the one before and
    one class run after its `@`, so the scan is linear."""
    out: list[str] = []
    kept = searched = 0
    at = text.find("@")
    while at >= 0:
        start = max(searched, *(text.rfind(mark, searched, at) + 1 for mark in _TOKEN_MARKS))
        end = _TOKEN_REST.match(text, at).end()  # type: ignore[union-attr]
        token = text[start:end]
        if (cleaned := without_uri_password(token)) is not None and cleaned != token:  # equal: `_scrub_userinfo` took it
            kinds.append("URL password")
            out += (text[kept:start], cleaned)
            kept = end
        searched = end
        at = text.find("@", end)
    return "".join(out) + text[kept:] if out else text


def _scheme_before(text: str, end: int) -> bool:
    """Does a URI scheme (a letter at a word boundary, then letters, digits, `+`, `.`, `-`) end at `end`?"""
    start = end
    while start > 0 and end - start < _SCHEME_MAX and text[start - 1] in _SCHEME_CHARACTERS:
        start -= 1
    for index in range(start, end):
        before = text[index - 1] if index else " "
        if text[index].isascii() and text[index].isalpha() and not (before.isalnum() or before == "_"):
            return True
    return False


def _pem_label_end(text: str, start: int) -> int:
    """The index of the `-----` closing a `[A-Z ]*PRIVATE KEY` label that starts at `start`, or -1."""
    end = start
    while end < len(text) and end - start <= _PEM_LABEL_MAX and text[end] in _PEM_LABEL:
        end += 1
    if text.startswith("-----", end) and text[start:end].endswith("PRIVATE KEY"):
        return end
    return -1


def _scrub_private_keys(text: str, kinds: list[str]) -> str:
    """`-----BEGIN … PRIVATE KEY-----` to its `-----END … PRIVATE KEY-----` -> `[redacted]`; a
    block without its END line (a message cut short) is redacted to the end of the text."""
    out: list[str] = []
    kept = search = 0
    while (begin := text.find("-----BEGIN ", search)) >= 0:
        label_end = _pem_label_end(text, begin + 11)
        if label_end < 0:
            search = begin + 1
            continue
        end, probe = len(text), label_end + 5
        while (close := text.find("-----END ", probe)) >= 0:
            close_label = _pem_label_end(text, close + 9)
            if close_label >= 0:
                end = close_label + 5
                break
            probe = close + 1
        kinds.append("private key")
        out += (text[kept:begin], REDACTED)
        kept = search = end
    return "".join(out) + text[kept:] if out else text


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")
# `kit://ubuntu:22.04@sha256:<hex>`: an image reference with a tag and a digest, which urlsplit
# alone reads as user `ubuntu`, password `22.04` (no host has a port of 32+ hex digits).
_DIGEST_HOST = re.compile(r"[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}(?![0-9A-Za-z])")
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})  # WHATWG: an authority follows without slashes
_C0_OR_SPACE = "".join(map(chr, range(0x21)))


def without_uri_password(value: str) -> str | None:
    """`scheme://user:[redacted]@host/...` for a URI whose userinfo holds a password (every
    other character kept), or None if it holds none. Found by the URI's structure on the text
    as given, read as lenient URL parsers read it (WHATWG, urlsplit): tabs and newlines
    ignored, leading spaces and controls skipped, then a scheme (RFC 3986: a letter, then
    letters, digits, `+`, `.`, `-`) or none (`//host`), then the authority after any run of `/`
    and `\\` (none needed for http, https, ws, wss, ftp and file), up to the first `/`, `?` or
    `#`; userinfo is what stands before its last `@`, the password what follows userinfo's
    first `:`. Image references (`ubuntu:22.04@sha256:…`, `host:5000/repo@sha256:…`) have no
    authority, so nothing in them is touched. A password is redacted whenever one of those
    readers would see one; a parser that cleans the text first (urlsplit drops tabs) would
    give offsets that miss it."""
    if "@" not in value:
        return None
    if "\t" in value or "\n" in value or "\r" in value:
        kept = [index for index, character in enumerate(value) if character not in "\t\n\r"]
        text = "".join(value[index] for index in kept)
    else:
        kept, text = None, value
    begin = len(text) - len(text.lstrip(_C0_OR_SPACE))
    scheme = _SCHEME.match(text, begin)
    start = scheme.end() if scheme else begin
    while start < len(text) and text[start] in "/\\":
        start += 1
    slashes = start - (scheme.end() if scheme else begin)
    if scheme is None and slashes < 2 or scheme is not None and slashes == 0 and scheme.group()[:-1].lower() not in _SPECIAL_SCHEMES:
        return None  # no authority
    end = len(text)
    for mark in "/?#":
        found = text.find(mark, start, end)
        if found >= 0:
            end = found
    at = text.rfind("@", start, end)
    colon = text.find(":", start, at) if at >= 0 else -1
    if colon < 0 or _DIGEST_HOST.fullmatch(text, at + 1, end):
        return None
    if kept is not None:
        colon, at = kept[colon], kept[at]
    return value[:colon + 1] + REDACTED + value[at:]


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """The record with secrets removed (see the module docstring) and, if anything was,
    a `redactions` list saying where and what."""
    found: list[dict[str, str]] = []
    cleaned = _walk(record, "", found)
    if found:
        cleaned["redactions"] = found
    return cleaned


def _walk(value: Any, path: str, found: list[dict[str, str]]) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and is_secret_key(key) and item not in (None, "", [], {}):
                out[key] = REDACTED
                found.append({"field": where, "kind": "secret-named field"})
            elif key in FREE_TEXT_KEYS:
                out[key] = _free_text(item, where, found)
            elif key == "reference" and isinstance(item, str) and (cleaned := without_uri_password(item)) is not None:
                out[key] = cleaned
                found.append({"field": where, "kind": "URI userinfo password"})
            else:
                out[key] = _walk(item, where, found)
        return out
    if isinstance(value, (list, tuple)):
        return [_walk(item, f"{path}[{index}]", found) for index, item in enumerate(value)]
    return value  # text outside free-text fields is evidence: kept as given


def _free_text(value: Any, path: str, found: list[dict[str, str]]) -> Any:
    if isinstance(value, str):
        text, kinds = scrub_text(value)
        found.extend({"field": path, "kind": kind} for kind in kinds)
        return text
    if isinstance(value, (list, tuple)):
        return [_free_text(item, f"{path}[{index}]", found) for index, item in enumerate(value)]
    return _walk(value, path, found)
