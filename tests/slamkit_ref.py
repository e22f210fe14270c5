"""SlamKit's utterance log-likelihood, re-implemented from its public code for tests.

Sources (slp-rl/slamkit):

- ``slamkit/tokeniser/unit_tokeniser.py``: ``UnitTokeniser._init_text_tokeniser`` wraps an
  utterance as ``TemplateProcessing(single="<S> $0 <S>")`` with ``<PAD>`` = 0, ``<S>`` = 1 and
  unit i = i + 2; ``SpeechLM.log_likelihood`` (``slamkit/model/speech_lm.py``) pads on the right.
- ``slamkit/model/unit_lm.py`` ``UnitLM.log_likelihood``: ``logits = self(input_ids=tokens)``
  (no attention mask), targets ``tokens[..., 1:]`` with pad ids set to -100, returns
  ``-calc_nll(shifted_logits, shifted_x, shifted_x.ne(-100), mean_nll)``.
- ``slamkit/utils/calculation_utils.py`` ``calc_nll``: per-token ``cross_entropy`` (reduction
  none) times the mask, summed over the sequence, divided by ``mask.sum(-1)`` when ``len_norm``.
- ``slamkit/metric/modelling_metric.py`` ``modelling_metric``: a pair counts 1 when
  ``pos_likelihood > neg_likelihood``, 0.5 on equality, with ``mean_nll: true``
  (``config/metric/default.yaml``).
"""

from __future__ import annotations

import torch
from torch.nn.functional import cross_entropy
from torch.nn.utils.rnn import pad_sequence

PAD, S, OFFSET = 0, 1, 2


def slamkit_tokens(units: list[torch.Tensor]) -> torch.Tensor:
    """(B, T) ``<S> units <S>`` right-padded with ``<PAD>``."""
    rows = [torch.tensor([S] + (torch.as_tensor(u) + OFFSET).tolist() + [S]) for u in units]
    return pad_sequence(rows, batch_first=True, padding_value=PAD)


@torch.no_grad()
def slamkit_log_likelihood(model, units: list[torch.Tensor], mean_nll: bool = True) -> torch.Tensor:
    """(B,) SlamKit's ``UnitLM.log_likelihood`` of each utterance (natural log)."""
    tokens = slamkit_tokens(units)
    logits = model(input_ids=tokens).logits
    shifted_x = tokens[..., 1:].clone()
    shifted_logits = logits[..., :-1, :]
    shifted_x[shifted_x == PAD] = -100
    mask = shifted_x.ne(-100)
    losses = cross_entropy(
        shifted_logits.contiguous().view(-1, shifted_logits.size(-1)).float(),
        shifted_x.long().contiguous().view(-1),
        reduction="none",
    ).view(*shifted_x.size())
    ll = (losses * mask).sum(dim=-1)
    return -(ll / mask.sum(dim=-1) if mean_nll else ll)
