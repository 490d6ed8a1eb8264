"""Labels: what a torrent's labels may be, and the per-label defaults applied at add time.

A torrent has any number of labels (up to ``MAX_LABELS``), each a trimmed string of 1 to
``MAX_LABEL_LENGTH`` characters with no control characters; duplicates are dropped, the
order given is kept. The YAML ``labels:`` section gives per-label defaults, like
qBittorrent's categories: ``labels: {tv: {save_path: /srv/tv, ...}}``. At add time every
add-time setting the caller did not give takes the value of the FIRST of the torrent's
labels that has a default for it, else the session's default. Pure: no I/O, no Twisted.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

MAX_LABELS = 32  # labels on one torrent
MAX_LABEL_LENGTH = 64  # characters in one label (after trimming)
LABELS_KEY = "labels"  # the per-torrent setting, and the YAML section


def check_label(value: Any) -> str:
    """One label, trimmed; ValueError saying what is wrong."""
    if not isinstance(value, str):
        raise ValueError(f"a label must be a string, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("a label must not be empty")
    if len(text) > MAX_LABEL_LENGTH:
        raise ValueError(f"a label is at most {MAX_LABEL_LENGTH} characters, got {len(text)}")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise ValueError(f"a label must not contain control characters: {text!r}")
    return text


def check_labels(value: Any) -> list[str]:
    """A torrent's labels: a list of labels (an empty list clears them), duplicates dropped."""
    if not isinstance(value, list):
        raise ValueError("expected a list of labels (strings); [] clears them")
    labels: list[str] = []
    for item in value:
        label = check_label(item)
        if label not in labels:
            labels.append(label)
    if len(labels) > MAX_LABELS:
        raise ValueError(f"at most {MAX_LABELS} labels per torrent, got {len(labels)}")
    return labels


def has_label(labels: Iterable[str], label: str) -> bool:
    """Whether ``label`` (compared as given, after trimming) is among ``labels``."""
    return label.strip() in labels


def label_defaults(
    given: Mapping[str, Any], table: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """``given`` (checked ``torrent.add`` options) with the per-label defaults of ``table``
    filled in for the settings not given; the first of the torrent's labels with a default
    for a setting wins. Values in ``table`` are already checked (config load)."""
    labels = given.get(LABELS_KEY) or ()
    if not table or not labels:
        return dict(given)
    out = dict(given)
    for label in labels:
        for name, value in table.get(label, {}).items():
            if out.get(name) is None:
                out[name] = value
    return out
