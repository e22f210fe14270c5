"""Log-likelihood of unit sequences under a SpeechLM (what sWUGGY/sBLIMP/sSC/tSC compare).

Which tokens are scored follows the model's convention (``UnitVocab.scoring_ids``):

- ours (``twistlm``): ``BOS u1 .. un``, every unit scored given BOS (n tokens);
- TWIST: bare units, the first unit conditions and the rest are scored (n - 1 tokens);
- SlamKit: ``<S> u1 .. un <S>``, every unit and the trailing ``<S>`` scored (n + 1 tokens), as
  SlamKit's ``UnitLM.log_likelihood`` / ``calc_nll`` do (slp-rl/slamkit
  ``slamkit/model/unit_lm.py``, ``slamkit/utils/calculation_utils.py``; the trailing ``<S>`` comes
  from the tokeniser template ``<S> $0 <S>`` in ``slamkit/tokeniser/unit_tokeniser.py``).
  SlamKit's evals compare ``-calc_nll(..., len_norm=True)``, i.e. our ``mean_logprob``.

Log-probabilities are natural logs from an fp32 ``log_softmax``.

:func:`score_unique` is what `twistlm eval` calls: each distinct sequence scored once, and the
two utterances of a pair that share a unit prefix packed into one row that computes the prefix
once (tree attention, :func:`score_packed_pairs`); every score equals :func:`score_units`'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from twistlm.lm.model import SpeechLM


@dataclass(frozen=True)
class UtteranceScore:
    """Log-likelihood of one utterance.

    Attributes:
        sum_logprob: natural log, summed over the scored unit tokens.
        n_tokens: number of scored tokens: n units under ours, n - 1 under TWIST (0 for a 1-unit
            utterance), n + 1 under SlamKit (the trailing ``<S>``).
    """

    sum_logprob: float
    n_tokens: int

    @property
    def mean_logprob(self) -> float:
        """Length-normalised score (mean log-prob per scored token); NaN when nothing is scored."""
        return self.sum_logprob / self.n_tokens if self.n_tokens else float("nan")


def _ids(lm: SpeechLM, units: Tensor) -> Tensor:
    ids = lm.vocab.scoring_ids(torch.as_tensor(units).reshape(-1))
    if lm.max_positions is not None and ids.numel() > lm.max_positions:
        raise ValueError(
            f"utterance of {ids.numel()} tokens exceeds the model's {lm.max_positions} positions"
        )
    return ids


def _autocast(device: torch.device, enabled: bool):
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def token_logprobs(logits: Tensor, ids: Tensor) -> Tensor:
    """(B, T, V) logits, (B, T) ids -> (B, T-1) log p(ids[:, t+1] | ids[:, :t+1]) in fp32."""
    logp = logits[:, :-1].float().log_softmax(-1)
    return logp.gather(-1, ids[:, 1:, None]).squeeze(-1)


@torch.inference_mode()
def score_units_reference(
    lm: SpeechLM, units: list[Tensor], device=None, autocast: bool = False
) -> list[UtteranceScore]:
    """One utterance at a time, no padding: the reference :func:`score_units` must match."""
    device = torch.device(device) if device is not None else lm.device
    out = []
    for u in units:
        ids = _ids(lm, u)
        if ids.numel() < 2:
            out.append(UtteranceScore(0.0, 0))
            continue
        with _autocast(device, autocast):
            logits = lm.model(input_ids=ids[None].to(device)).logits
        lp = token_logprobs(logits, ids[None].to(device))
        out.append(UtteranceScore(float(lp.sum()), int(lp.numel())))
    return out


@torch.inference_mode()
def score_units(
    lm: SpeechLM,
    units: list[Tensor],
    batch_size: int = 16,
    device=None,
    autocast: bool = False,
    progress: bool = False,
) -> list[UtteranceScore]:
    """Score many utterances in batches; results in input order.

    Utterances are sorted by length (less padding), right-padded with ``vocab.pad_id`` under an
    attention mask, so padding never changes a score (equal to :func:`score_units_reference`
    within 1e-4 in fp32).

    Args:
        units: 1-D unit-index tensors (before the vocab offset).
        batch_size: utterances per forward pass.
        device: where to run (default: the model's device).
        autocast: bf16 autocast for the forward pass (log_softmax stays fp32).
        progress: show a tqdm bar.
    """
    device = torch.device(device) if device is not None else lm.device
    seqs = [_ids(lm, u) for u in units]
    order = sorted(range(len(seqs)), key=lambda i: -seqs[i].numel())
    results: list[UtteranceScore | None] = [None] * len(seqs)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, desc="scoring", unit="batch")
    for batch in batches:
        lens = torch.tensor([seqs[i].numel() for i in batch])
        T = int(lens.max())
        if T < 2:
            for i in batch:
                results[i] = UtteranceScore(0.0, 0)
            continue
        ids = torch.full((len(batch), T), lm.vocab.pad_id, dtype=torch.long)
        for row, i in enumerate(batch):
            ids[row, : lens[row]] = seqs[i]
        mask = (torch.arange(T)[None] < lens[:, None]).long()  # (B, T)
        ids, mask = ids.to(device), mask.to(device)
        with _autocast(device, autocast):
            logits = lm.model(input_ids=ids, attention_mask=mask).logits
        lp = token_logprobs(logits, ids) * mask[:, 1:]  # (B, T-1), pads zeroed
        sums = lp.sum(1).tolist()
        for row, i in enumerate(batch):
            results[i] = UtteranceScore(float(sums[row]), max(int(lens[row]) - 1, 0))
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------- deduplicated, pair-packed
def deduplicate(seqs: Sequence[Tensor]) -> tuple[list[Tensor], np.ndarray]:
    """Distinct sequences (first occurrence order) and (S,) index of each input among them."""
    index: dict[tuple[int, ...], int] = {}
    unique: list[Tensor] = []
    where = np.empty(len(seqs), dtype=np.int64)
    for i, s in enumerate(seqs):
        key = tuple(s.tolist())
        j = index.get(key)
        if j is None:
            j = index[key] = len(unique)
            unique.append(s)
        where[i] = j
    return unique, where


def common_prefix(a: Tensor, b: Tensor) -> int:
    """Length of the longest common prefix of two 1-D tensors."""
    n = min(len(a), len(b))
    diff = (a[:n] != b[:n]).nonzero()
    return int(diff[0]) if len(diff) else n


def packable_pairs(
    seqs: Sequence[Tensor], pairs: Sequence[tuple[int, int]], min_shared: int = 8
) -> list[tuple[int, int]]:
    """The index pairs worth packing: two different sequences sharing a prefix of at least
    ``min_shared`` units and a quarter of the shorter one; each sequence in one pair at most."""
    packed: list[tuple[int, int]] = []
    taken: set[int] = set()
    for a, b in pairs:
        if a == b or a in taken or b in taken:
            continue
        shared = common_prefix(seqs[a], seqs[b])
        if shared >= min_shared and 4 * shared >= min(len(seqs[a]), len(seqs[b])):
            packed.append((a, b))
            taken |= {a, b}
    return packed


def pack_pair(ids_a: Tensor, ids_b: Tensor, shared: int):
    """One row holding both utterances, the shared prefix once: ``prefix | a-rest | b-rest``.

    Returns (ids (T,), position_ids (T,), allowed (T, T) bool attention, index_a, index_b):
    ``index_x`` are the row positions whose logits predict ``ids_x[1:]``. The b-branch attends
    to the prefix and itself, never to a's rest, and its positions continue from the prefix,
    so every logit equals the one of scoring the utterance alone (tree attention).
    """
    na, nb, L = len(ids_a), len(ids_b), shared
    ids = torch.cat([ids_a, ids_b[L:]])
    pos = torch.cat([torch.arange(na), torch.arange(L, nb)])
    branch = torch.cat([torch.zeros(L), torch.ones(na - L), torch.full((nb - L,), 2.0)])
    causal = torch.ones(len(ids), len(ids), dtype=torch.bool).tril()
    same = (branch[:, None] == branch[None, :]) | (branch[None, :] == 0)
    allowed = causal & same
    index_a = torch.arange(na - 1)
    index_b = torch.cat([torch.arange(min(L, nb - 1)), na + torch.arange(max(nb - L - 1, 0))])
    return ids, pos, allowed, index_a, index_b


@torch.inference_mode()
def score_packed_pairs(
    lm: SpeechLM,
    pairs: Sequence[tuple[Tensor, Tensor]],
    batch_size: int = 16,
    device=None,
    autocast: bool = False,
    progress: bool = False,
) -> list[tuple[float, int, float, int]]:
    """(sum, n) of both utterances of each pair, computing a shared unit prefix once.

    Rows are sorted by packed length and right-padded (padding attends only to itself); scores
    equal one-by-one scoring within float rounding (checked at run time by ``score_unique``).
    """
    device = torch.device(device) if device is not None else lm.device
    vocab = lm.vocab
    rows = []
    for a, b in pairs:
        # the ids scoring feeds (SlamKit: `<S> units <S>`, the trailing <S> scored too)
        ia, ib = vocab.scoring_ids(a.reshape(-1)), vocab.scoring_ids(b.reshape(-1))
        rows.append((ia, ib, *pack_pair(ia, ib, common_prefix(ia, ib))))
    order = sorted(range(len(rows)), key=lambda i: -len(rows[i][2]))
    out: list = [None] * len(rows)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc="scoring pairs", unit="batch", disable=not progress):
        T = max(len(rows[i][2]) for i in batch)
        ids = torch.full((len(batch), T), vocab.pad_id, dtype=torch.long)
        pos = torch.zeros((len(batch), T), dtype=torch.long)
        mask = torch.eye(T, dtype=torch.bool).repeat(len(batch), 1, 1)  # pads see themselves
        for r, i in enumerate(batch):
            _, _, pid, ppos, allowed, _, _ = rows[i]
            n = len(pid)
            ids[r, :n], pos[r, :n], mask[r, :n, :n] = pid, ppos, allowed
        with _autocast(device, autocast):
            logits = lm.model(
                input_ids=ids.to(device),
                attention_mask=mask[:, None].to(device),
                position_ids=pos.to(device),
            ).logits
        logp = logits.float().log_softmax(-1)  # (B, T, V)
        for r, i in enumerate(batch):
            ia, ib, _, _, _, xa, xb = rows[i]
            sa = logp[r, xa.to(device), ia[1:].to(device)].sum()
            sb = logp[r, xb.to(device), ib[1:].to(device)].sum()
            out[i] = (float(sa), len(xa), float(sb), len(xb))
    return out


def _packing_error(lm, got, seqs, device, autocast: bool) -> float:
    """Largest per-token gap between packed scores ``got`` of the first (up to 4) pairs and
    :func:`score_units` of the same ``seqs`` (a, b, a, b, ...)."""
    ref = score_units(lm, seqs, device=device, autocast=autocast)
    return max(
        abs(got[n][2 * side] - ref[2 * n + side].sum_logprob) / max(1, ref[2 * n + side].n_tokens)
        for n in range(len(seqs) // 2)
        for side in (0, 1)
    )


def score_unique(
    lm: SpeechLM,
    seqs: Sequence[Tensor],
    batch_size: int = 16,
    device=None,
    autocast: bool = False,
    progress: bool = True,
    pairs: Sequence[tuple[int, int]] | None = None,
    min_shared: int = 8,
    info: dict[str, Any] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Score sequences once per distinct content -> ((S,) sum log-prob, (S,) n tokens, n unique).

    Distinct sequences go to ``score_units`` longest first, so the batches hold sequences of
    similar length (little padding) and the largest batch, the memory peak, comes first.

    With ``pairs`` (index pairs into ``seqs``), a pair whose two sequences share a unit prefix of
    at least ``min_shared`` units (and a quarter of the shorter one) is packed into one row that
    computes the prefix once (:func:`score_packed_pairs`); the first packed batch is checked
    against ``score_units`` and packing is dropped if the model does not honour the 4-D
    attention mask. ``info`` (if given) receives ``packed_pairs`` and ``packing``.
    """
    unique, where = deduplicate(seqs)
    sums = np.empty(len(unique))
    ns = np.empty(len(unique), dtype=np.int64)
    packed: list[tuple[int, int]] = []
    if pairs and min_shared > 0:
        packed = packable_pairs(
            unique, [(int(where[i]), int(where[j])) for i, j in pairs], min_shared
        )
    mode = "packed" if packed else "off"
    if packed:
        got = score_packed_pairs(
            lm, [(unique[a], unique[b]) for a, b in packed], batch_size, device, autocast, progress
        )
        check = [unique[k] for ab in packed[:4] for k in ab]
        err = _packing_error(lm, got, check, device, autocast)
        if err > (5e-2 if autocast else 1e-3):  # model ignores 4-D masks: score normally
            tqdm.write(f"warning: shared-prefix packing disagrees by {err:.3g}/token; disabled")
            packed, mode = [], "disabled"
        else:
            for (a, b), (sa, na, sb, nb) in zip(packed, got, strict=True):
                sums[a], ns[a], sums[b], ns[b] = sa, na, sb, nb
    done = {k for ab in packed for k in ab}
    rest = sorted((j for j in range(len(unique)) if j not in done), key=lambda j: -len(unique[j]))
    if rest:
        scored = score_units(
            lm,
            [unique[j] for j in rest],
            batch_size=batch_size,
            device=device,
            autocast=autocast,
            progress=progress,
        )
        for j, s in zip(rest, scored, strict=True):
            sums[j], ns[j] = s.sum_logprob, s.n_tokens
    if info is not None:
        info.update(packed_pairs=len(packed), packing=mode)
    return sums[where], ns[where], len(unique)
