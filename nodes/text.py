"""From a prompt to the vectors the UNet reads: tokenize, encode, weight, combine.

What this pack teaches:

1. **Tokens.** CLIP's tokenizer cuts text into sub-word pieces (byte-pair encoding) and maps
   each to an id. Every sequence starts with ``<|startoftext|>``, ends with ``<|endoftext|>``
   and is padded to 77 positions. Run Tokenize to see them.
2. **Embeddings.** The text encoder (a transformer) turns the 77 ids into 77 vectors (768
   numbers each for SD 1.5). The UNet looks at all of them through cross-attention: that
   77×768 matrix *is* the CONDITIONING.
3. **Clip skip.** ``clip_skip`` 2 takes the second-to-last transformer layer (then the final
   layer norm) instead of the last. Numbering follows A1111/Deforum: 1 = last layer (no
   skip), 2 = penultimate = diffusers ``clip_skip=1`` = ComfyUI CLIPSetLastLayer −2.
4. **Weights.** ``(word:1.3)`` multiplies the emphasis of ``word`` by 1.3, ``(word)`` by 1.1,
   ``((word))`` by 1.21, ``[word]`` divides by 1.1; ``\\(`` is a literal bracket. With the
   ``comfy`` interpretation a weighted token vector is pushed away from what an empty
   prompt gives at that position: ``empty + w·(z − empty)``; with ``A1111`` the vector is
   scaled by ``w`` and the whole prompt is rescaled to keep its mean.
5. **Long prompts.** Past 75 tokens the prompt is cut into chunks of 75; each chunk gets
   its own start/end tokens and is encoded alone, and the results are joined along the
   token axis (77, 154, 231 … vectors). Cross-attention does not mind the longer sequence.

CONDITIONING is a list of entries ``{"embeds": tensor 1×T×D, ...}``; ControlNet adds
``"controls"``. Several entries (ConditioningCombine) are each predicted and averaged.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NamedTuple

from nodegraph import Doc, Multiline, NodeInputError, Range, node
from nodegraph.lazy import lazy_import
from nodegraph.types import Clip, Conditioning, Prompt

torch = lazy_import("torch")

Prompt = Annotated[str, Multiline(), Doc("the prompt; (word:1.3) weights, (word) = 1.1, [word] = 1/1.1")]

_EXPLICIT = re.compile(r":\s*([+-]?(?:\d+\.?\d*|\.\d+))\s*$")


# ---- prompt weighting syntax ---------------------------------------------------------------


def parse_weighted(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) pieces.

    >>> parse_weighted("a (red:1.5) [old] ((car))")
    [('a ', 1.0), ('red', 1.5), (' ', 1.0), ('old', 0.909...), (' ', 1.0), ('car', 1.21)]
    """
    pieces, _ = _parse_group(text, 0, None)
    merged: list[tuple[str, float]] = []
    for piece, weight in pieces:
        if not piece:
            continue
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + piece, weight)
        else:
            merged.append((piece, weight))
    return merged


def _parse_group(text: str, i: int, closing: str | None) -> tuple[list[tuple[str, float]], int]:
    pieces: list[tuple[str, float]] = []
    buffer = ""
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            buffer += text[i + 1]
            i += 2
            continue
        if char in "([":
            if buffer:
                pieces.append((buffer, 1.0))
                buffer = ""
            inner, i = _parse_group(text, i + 1, ")" if char == "(" else "]")
            factor = 1.1 if char == "(" else 1 / 1.1
            if char == "(" and inner:
                last_text, last_weight = inner[-1]
                match = _EXPLICIT.search(last_text)
                if match and last_weight == 1.0:
                    factor = float(match.group(1))
                    inner[-1] = (last_text[: match.start()], last_weight)
            pieces.extend((piece, weight * factor) for piece, weight in inner)
            continue
        if closing is not None and char == closing:
            if buffer:
                pieces.append((buffer, 1.0))
            return pieces, i + 1
        buffer += char
        i += 1
    if buffer:
        pieces.append((buffer, 1.0))
    return pieces, i


# ---- tokens and encoding -------------------------------------------------------------------


def _require_clip(clip: Any) -> Any:
    if clip is None or getattr(clip, "text_encoder", None) is None:
        raise NodeInputError(
            "clip",
            "this model has no text encoder, so a prompt cannot be encoded: load one with "
            "LoadTextEncoder, or use a checkpoint that contains text_encoder/",
            expected="a CLIP handle",
            got="None",
        )
    return clip


def weighted_tokens(clip: Any, text: str) -> tuple[list[list[int]], list[list[float]]]:
    """Token ids and weights per chunk, each chunk framed as [start] + ≤75 tokens + [end] + padding."""
    tokenizer = clip.tokenizer
    length = int(tokenizer.model_max_length)
    body = length - 2
    ids: list[int] = []
    weights: list[float] = []
    for piece, weight in parse_weighted(text):
        piece_ids = tokenizer(piece, add_special_tokens=False).input_ids
        ids += piece_ids
        weights += [weight] * len(piece_ids)
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    chunks_ids, chunks_weights = [], []
    for start in range(0, max(len(ids), 1), body):
        part, part_w = ids[start : start + body], weights[start : start + body]
        padding = body - len(part)
        chunks_ids.append([bos] + part + [eos] + [pad] * padding)
        chunks_weights.append([1.0] + part_w + [1.0] + [1.0] * padding)
    return chunks_ids, chunks_weights


def _encode_ids(clip: Any, ids: "torch.Tensor", clip_skip: int) -> "torch.Tensor":
    encoder = clip.text_encoder
    ids = ids.to(encoder.device)
    attention_mask = None
    if getattr(encoder.config, "use_attention_mask", False):
        attention_mask = torch.ones_like(ids)
    with torch.no_grad():
        if clip_skip <= 1:
            return encoder(ids, attention_mask=attention_mask)[0]
        out = encoder(ids, attention_mask=attention_mask, output_hidden_states=True)
        hidden = out[-1][-clip_skip]
        # transformers 5 dropped the `text_model` wrapper; 4.x still has it
        return getattr(encoder, "text_model", encoder).final_layer_norm(hidden)


def encode_text(clip: Any, text: str, clip_skip: int = 1, weight_interpretation: str = "comfy") -> "torch.Tensor":
    """Prompt → 1×(77·chunks)×D tensor of token vectors."""
    _require_clip(clip)
    chunk_ids, chunk_weights = weighted_tokens(clip, text)
    ids = torch.tensor(chunk_ids, dtype=torch.long)
    z = _encode_ids(clip, ids, clip_skip)  # chunks × 77 × D
    w = torch.tensor(chunk_weights, dtype=z.dtype, device=z.device).unsqueeze(-1)
    if bool((w != 1.0).any()):
        if weight_interpretation == "A1111":
            mean_before = z.mean()
            z = z * w
            z = z * (mean_before / z.mean())
        else:
            empty_ids, _ = weighted_tokens(clip, "")
            empty = _encode_ids(clip, torch.tensor(empty_ids, dtype=torch.long), clip_skip)
            z = empty + (z - empty) * w
    dtype = clip.text_encoder.dtype
    return z.reshape(1, -1, z.shape[-1]).to(dtype)


def make_conditioning(embeds: "torch.Tensor", **extra: Any) -> list[dict]:
    entry = {"embeds": embeds}
    entry.update(extra)
    return [entry]


def _entries(value: Any, input_name: str) -> list[dict]:
    if not isinstance(value, list) or not value or not all(isinstance(e, dict) and "embeds" in e for e in value):
        raise NodeInputError(input_name, "not a CONDITIONING", expected="output of CLIPTextEncode", got=type(value).__name__)
    return value


# ---- nodes ------------------------------------------------------------------------------------


class TokenList(NamedTuple):
    tokens: str
    count: int


@node(category="conditioning", name="Tokenize")
def tokenize(clip: Clip, text: Prompt = "a photo of a cat") -> TokenList:
    """Show how CLIP cuts a prompt into tokens: one line per token with its id, the text it
    stands for and its weight. `count` is the number of real tokens (without start/end/pad);
    past 75 the prompt is split into chunks of 75."""
    _require_clip(clip)
    chunk_ids, chunk_weights = weighted_tokens(clip, text)
    tokenizer = clip.tokenizer
    pad = tokenizer.pad_token_id
    lines = []
    count = 0
    for number, (ids, weights) in enumerate(zip(chunk_ids, chunk_weights)):
        lines.append(f"-- chunk {number + 1} of {len(chunk_ids)} --")
        seen_end = False
        for position, (token, weight) in enumerate(zip(ids, weights)):
            if seen_end and token == pad:
                continue
            piece = tokenizer.convert_ids_to_tokens(token)
            special = token in (tokenizer.bos_token_id, tokenizer.eos_token_id)
            if token == tokenizer.eos_token_id and position > 0:
                seen_end = True
            if not special:
                count += 1
            mark = f"  x{weight:.3g}" if weight != 1.0 else ""
            lines.append(f"{position:3d}  {token:6d}  {piece}{mark}")
        padding = sum(1 for t in ids[1:] if t == pad) - (1 if pad == tokenizer.eos_token_id else 0)
        if padding > 0:
            lines.append(f"     ... {padding} padding tokens up to {len(ids)}")
    return TokenList("\n".join(lines), count)


@node(category="conditioning", name="CLIPTextEncode")
def clip_text_encode(
    clip: Clip,
    text: Prompt = "",
    clip_skip: Annotated[int, Range(1, 12), Doc("1 = last layer; 2 = penultimate (A1111 'clip skip 2')")] = 1,
    weight_interpretation: Annotated[Literal["comfy", "A1111"], Doc("how (word:1.3) changes the vectors")] = "comfy",
) -> Conditioning:
    """Encode a prompt into CONDITIONING: the token vectors the UNet's cross-attention reads.
    Use one for the positive prompt and one (often empty) for the negative."""
    embeds = encode_text(clip, text, clip_skip, weight_interpretation)
    return make_conditioning(embeds)


@node(category="conditioning", name="ConditioningCombine")
def conditioning_combine(conditioning_1: Conditioning, conditioning_2: Conditioning) -> Conditioning:
    """Keep both prompts as separate entries: the sampler predicts noise for each and
    averages the predictions (mixing two *ideas*, rather than two sets of words)."""
    return list(_entries(conditioning_1, "conditioning_1")) + list(_entries(conditioning_2, "conditioning_2"))


@node(category="conditioning", name="ConditioningConcat")
def conditioning_concat(conditioning_to: Conditioning, conditioning_from: Conditioning) -> Conditioning:
    """Append the token vectors of `conditioning_from` after those of `conditioning_to`:
    like one long prompt whose parts were encoded separately (so they do not attend to each other)."""
    source = _entries(conditioning_from, "conditioning_from")[0]["embeds"]
    out = []
    for entry in _entries(conditioning_to, "conditioning_to"):
        joined = dict(entry)
        joined["embeds"] = torch.cat([entry["embeds"], source.to(entry["embeds"])], dim=1)
        out.append(joined)
    return out


@node(category="conditioning", name="ConditioningAverage")
def conditioning_average(
    conditioning_to: Conditioning,
    conditioning_from: Conditioning,
    conditioning_to_strength: Annotated[float, Range(0.0, 1.0, step=0.01)] = 1.0,
) -> Conditioning:
    """Blend two prompts' vectors: strength·to + (1 − strength)·from. Walking the strength
    from 1 to 0 morphs one prompt into the other."""
    source = _entries(conditioning_from, "conditioning_from")[0]["embeds"]
    out = []
    for entry in _entries(conditioning_to, "conditioning_to"):
        target = entry["embeds"]
        if target.shape[1] != source.shape[1]:
            raise NodeInputError(
                "conditioning_from",
                "the two prompts have different lengths; averaging needs the same number of tokens",
                expected=f"{target.shape[1]} token vectors",
                got=f"{source.shape[1]}",
            )
        blended = dict(entry)
        s = conditioning_to_strength
        blended["embeds"] = target * s + source.to(target) * (1.0 - s)
        out.append(blended)
    return out


def prompt_vector(clip: Any, text: str) -> "torch.Tensor":
    """One vector for a whole prompt: the mean of its token vectors after the start token
    (the start token's vector is the same for every prompt; padding is left out)."""
    _require_clip(clip)
    tokens = clip.tokenizer(text, truncation=True, max_length=clip.tokenizer.model_max_length).input_ids
    ids = torch.tensor([tokens], dtype=torch.long)
    return _encode_ids(clip, ids, 1)[0, 1:].float().mean(0)


@node(category="conditioning", name="PromptSimilarity", output="cosine")
def prompt_similarity(
    clip: Clip,
    text_a: Prompt = "a red circle at the top left",
    text_b: Prompt = "a red circle at the top right",
) -> float:
    """How alike two prompts look to the text encoder: the cosine (−1..1) between the mean
    token vectors of each. Prompts that differ in one word are close; prompts about
    different things are further apart. The UNet only ever sees these vectors, so two
    prompts the encoder finds nearly equal give nearly equal pictures."""
    a, b = prompt_vector(clip, text_a), prompt_vector(clip, text_b)
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))
