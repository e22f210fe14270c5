"""Text topline: the same benchmark pairs scored through their *texts* by a text LM.

TWIST reports text-LM toplines next to the SpeechLM numbers; this scores each pair's
``positive_text`` / ``negative_text`` with a HF causal LM (default: SmolLM2-135M, offline) under
the same rules as the speech side: log-probability of every text token given the tokens before
it, conditioned on the tokenizer's BOS (or EOS when it has no BOS, GPT-2 style); mean per token
(headline) and sum; a tie counts 0.5; aggregation as the benchmark defines it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from twistlm.eval.results import EvalErrors, aggregate


def text_ids(hf_tokenizer, text: str) -> list[int]:
    """Token ids ``[BOS] t1 .. tn`` of one text (BOS, else EOS, else nothing, as condition)."""
    ids = list(hf_tokenizer(text, add_special_tokens=False)["input_ids"])
    prefix = hf_tokenizer.bos_token_id
    if prefix is None:
        prefix = hf_tokenizer.eos_token_id
    return ([int(prefix)] if prefix is not None else []) + [int(i) for i in ids]


@torch.inference_mode()
def score_token_ids(
    model,
    seqs: Sequence[Sequence[int]],
    batch_size: int = 16,
    device: str | torch.device = "cpu",
    pad_id: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Sum log-prob of tokens 2..n of each id sequence -> ((S,) sums, (S,) n scored tokens).

    Sequences are sorted by length and right-padded with an attention mask; right padding
    leaves the positions of real tokens unchanged, so a batched score equals the one-by-one
    score up to float rounding.
    """
    sums = np.zeros(len(seqs))
    ns = np.zeros(len(seqs), dtype=np.int64)
    order = sorted(range(len(seqs)), key=lambda i: -len(seqs[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for idx in tqdm(batches, desc="text topline", unit="batch", disable=not progress):
        lengths = [len(seqs[i]) for i in idx]
        T = max(lengths)
        ids = torch.full((len(idx), T), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), T), dtype=torch.long)
        for row, i in enumerate(idx):
            ids[row, : lengths[row]] = torch.tensor(seqs[i], dtype=torch.long)
            mask[row, : lengths[row]] = 1
        ids, mask = ids.to(device), mask.to(device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()  # (B, T, V)
        logp = torch.log_softmax(logits[:, :-1], dim=-1)  # predicts ids[:, 1:]
        tok = logp.gather(-1, ids[:, 1:, None])[..., 0]  # (B, T-1)
        valid = mask[:, 1:].bool()
        s = (tok * valid).sum(dim=1).double().cpu().numpy()
        n = valid.sum(dim=1).cpu().numpy()
        for row, i in enumerate(idx):
            sums[i], ns[i] = s[row], n[row]
    return sums, ns


def score_texts(
    model, hf_tokenizer, texts: Sequence[str], batch_size: int = 16, device="cpu", progress=False
) -> tuple[np.ndarray, np.ndarray]:
    """(S,) summed log-prob and (S,) scored-token counts of texts (each distinct text once)."""
    distinct = sorted(set(texts))
    pos = {t: i for i, t in enumerate(distinct)}
    pad = hf_tokenizer.pad_token_id
    if pad is None:
        pad = hf_tokenizer.eos_token_id or 0
    sums, ns = score_token_ids(
        model,
        [text_ids(hf_tokenizer, t) for t in distinct],
        batch_size=batch_size,
        device=device,
        pad_id=int(pad),
        progress=progress,
    )
    where = np.array([pos[t] for t in texts], dtype=np.int64)
    return sums[where], ns[where]


def text_topline(
    loaded: dict[str, tuple[str, list]],
    text_lm: str | Path | None = None,
    model_and_tokenizer=None,
    batch_size: int = 16,
    device: str = "cpu",
    ci: str = "wilson",
    errors: EvalErrors | None = None,
    progress: bool = True,
):
    """Score every pair that has both texts -> ({kind: BenchmarkResult}, text LM name).

    ``loaded`` maps a benchmark kind to (path, pairs); pairs without texts are left out
    (a benchmark without any texts gets no topline). ``model_and_tokenizer`` skips loading.
    """
    with_text = {
        k: (path, [p for p in pairs if p.positive_text and p.negative_text])
        for k, (path, pairs) in loaded.items()
    }
    with_text = {k: v for k, v in with_text.items() if v[1]}
    name = str(text_lm) if text_lm is not None else "SmolLM2-135M (offline GGUF)"
    if not with_text:
        return {}, name
    if model_and_tokenizer is None:
        from twistlm.lm.textlm import load_text_lm

        try:
            model_and_tokenizer = load_text_lm(text_lm)
        except Exception as e:
            if errors is None:
                raise
            errors.add(name, e, stage="topline")
            return {}, name
    model, hf_tok = model_and_tokenizer
    model = model.to(device).eval()
    texts = [
        t
        for _, pairs in with_text.values()
        for p in pairs
        for t in (p.positive_text, p.negative_text)
    ]
    sums, ns = score_texts(model, hf_tok, texts, batch_size, device, progress)
    out = {}
    i = 0
    for kind, (path, pairs) in with_text.items():
        k = len(pairs)
        s, n = sums[i : i + 2 * k], ns[i : i + 2 * k]
        i += 2 * k
        ok = (n[0::2] > 0) & (n[1::2] > 0)
        kept = [p for p, good in zip(pairs, ok, strict=True) if good]
        if not kept:
            continue
        out[kind] = aggregate(
            kind,
            path,
            kept,
            s[0::2][ok],
            n[0::2][ok],
            s[1::2][ok],
            n[1::2][ok],
            n_failed=len(loaded[kind][1]) - len(kept),
            ci=ci,
        )
    return out, name
