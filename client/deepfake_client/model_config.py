"""Read and update the `weighted_average` config.pbtxt of a model repository.

Calibration changes two `parameters` values (`weights`, `threshold`) and must
leave every other line of the file as it was: the string literal of each value is
replaced in place (a missing parameter is appended). The result is checked by
parsing both files with Triton's ModelConfig schema: they must differ in those
two values and nothing else. The server reads its config at start-up only (model
control is off): restart it to serve new weights.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path

from google.protobuf import text_encoding, text_format
from tritonclient.grpc import model_config_pb2

from .ensemble import COMBINER_MODEL, EnsembleSettings
from .errors import InvalidInputError

# Tokens of protobuf text format: string literals, comments, names/numbers, punctuation.
_TOKEN = re.compile(
    r"""(?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')"""
    r"""|(?P<comment>\#[^\n]*)"""
    r"""|(?P<word>[A-Za-z0-9_.+-]+)"""
    r"""|(?P<punct>[{}\[\]:,;<>])"""
    r"""|(?P<space>\s+)"""
)


class _Token:
    __slots__ = ("kind", "text", "start", "end")

    def __init__(self, kind: str, text: str, start: int, end: int) -> None:
        self.kind, self.text, self.start, self.end = kind, text, start, end


def _tokens(text: str) -> list[_Token]:
    tokens = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise InvalidInputError(f"cannot tokenise the config near {text[position : position + 40]!r}")
        if match.lastgroup not in ("comment", "space"):
            tokens.append(_Token(match.lastgroup, match.group(), match.start(), match.end()))
        position = match.end()
    return tokens


def _closing(tokens: list[_Token], open_index: int) -> int:
    """Index of the bracket closing tokens[open_index]."""
    depth = 0
    for index in range(open_index, len(tokens)):
        if tokens[index].text in "{[<":
            depth += 1
        elif tokens[index].text in "}]>":
            depth -= 1
            if depth == 0:
                return index
    raise InvalidInputError("unbalanced brackets in the config")


def _parameter_entries(tokens: list[_Token]) -> Iterator[tuple[int, int]]:
    """(open, close) token indices of each top-level `parameters` map entry."""
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token.text in "{[<":
            index = _closing(tokens, index) + 1
            continue
        if token.kind == "word" and token.text == "parameters":
            index += 1
            if tokens[index].text == ":":
                index += 1
            if tokens[index].text == "[":  # list syntax: parameters: [ {...}, {...} ]
                end = _closing(tokens, index)
                for inner in range(index + 1, end):
                    if tokens[inner].text in "{<" and tokens[inner - 1].text in "[,":
                        yield inner, _closing(tokens, inner)
                index = end + 1
            else:
                end = _closing(tokens, index)
                yield index, end
                index = end + 1
            continue
        index += 1


def _string_after(tokens: list[_Token], field: str, start: int, end: int) -> tuple[int, int] | None:
    """(first, last) token indices of the (possibly concatenated) string value of `field`."""
    for index in range(start, end):
        if tokens[index].kind == "word" and tokens[index].text == field:
            first = index + 1 + (tokens[index + 1].text == ":")
            last = first
            while last + 1 < end and tokens[last + 1].kind == "string":
                last += 1
            if tokens[first].kind != "string":
                raise InvalidInputError(f"{field} is not followed by a string in the config")
            return first, last
    return None


def _unquote(tokens: list[_Token], first: int, last: int) -> str:
    return "".join(text_encoding.CUnescape(tokens[i].text[1:-1]).decode("utf-8") for i in range(first, last + 1))


def _quote(value: str) -> str:
    return '"' + text_encoding.CEscape(value.encode("utf-8"), as_utf8=True) + '"'


def set_string_parameters(text: str, values: Mapping[str, str]) -> str:
    """`text` with the string values of these `parameters` keys replaced (or appended)."""
    tokens = _tokens(text)
    replacements: dict[str, tuple[int, int]] = {}
    for open_index, close_index in _parameter_entries(tokens):
        key_span = _string_after(tokens, "key", open_index + 1, close_index)
        if key_span is None:
            continue
        key = _unquote(tokens, *key_span)
        if key in values:
            value_span = _string_after(tokens, "string_value", open_index + 1, close_index)
            if value_span is None:
                raise InvalidInputError(f"parameter {key!r} has no string_value in the config")
            replacements[key] = (tokens[value_span[0]].start, tokens[value_span[1]].end)
    new_text = text
    for key, (start, end) in sorted(replacements.items(), key=lambda item: -item[1][0]):
        new_text = new_text[:start] + _quote(values[key]) + new_text[end:]
    appended = [key for key in values if key not in replacements]
    if appended and not new_text.endswith("\n"):
        new_text += "\n"
    for key in appended:
        new_text += (
            f"parameters {{\n  key: {_quote(key)}\n  value {{\n    string_value: {_quote(values[key])}\n  }}\n}}\n"
        )
    return new_text


def parse_config(text: str, source: str | Path = "config") -> model_config_pb2.ModelConfig:
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise InvalidInputError(f"{source} is not a valid Triton model config: {exc}") from exc


def config_path(repository: str | Path) -> Path:
    """The weighted_average config inside a model repository (or the config file itself)."""
    path = Path(repository)
    if path.is_file():
        return path
    candidate = path / COMBINER_MODEL / "config.pbtxt"
    if not candidate.is_file():
        raise InvalidInputError(f"no {COMBINER_MODEL}/config.pbtxt in the model repository {path}")
    return candidate


def read_settings(path: Path) -> EnsembleSettings:
    config = parse_config(path.read_text(), path)
    return EnsembleSettings.from_parameters({k: v.string_value for k, v in config.parameters.items()})


def write_calibration(path: Path, weights: Mapping[str, float], threshold: float) -> str:
    """Write new weights and threshold into the config at `path`; returns the new text."""
    old_text = path.read_text()
    values = {
        "weights": json.dumps({name: float(w) for name, w in weights.items()}),
        "threshold": repr(float(threshold)),
    }
    new_text = set_string_parameters(old_text, values)
    expected = parse_config(old_text, path)
    for key, value in values.items():
        expected.parameters[key].string_value = value
    if parse_config(new_text, path) != expected:
        raise InvalidInputError(f"rewriting {path} would change more than the weights and threshold; left untouched")
    path.write_text(new_text)
    return new_text
