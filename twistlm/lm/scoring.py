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
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

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
