"""Unit <-> token-id conventions of the SpeechLM checkpoints we read and write.

Three conventions exist in the wild and the same unit sequence maps to different ids in each;
scoring or generating with the wrong one silently gives wrong numbers, so every model carries
its :class:`UnitVocab` and every caller goes through it.

- ``twistlm`` (ours): ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, unit i at id i+3. Utterances are
  trained as ``BOS u1 .. un EOS``; scoring conditions on BOS and scores u1..un.
- ``twist`` (slprl/TWIST-350M/1.3B/7B, HF dirs): unit i at id ``i + config.offset``, padding
  ``config.pad_token_id``, no BOS/EOS (the TWIST example feeds bare units), so the first unit
  of an utterance is not scored.
- ``slamkit`` (SlamKit UnitLM): ``<PAD>``=0, ``<S>``=1 (BOS = EOS), unit i at id i+2
  (vocabulary 502 for 500 units). SlamKit's tokeniser wraps every utterance as
  ``<S> u1 .. un <S>`` (slp-rl/slamkit ``slamkit/tokeniser/unit_tokeniser.py``,
  ``TemplateProcessing(single="<S> $0 <S>")``) and its likelihood scores every non-pad target,
  the trailing ``<S>`` included (``UnitLM.log_likelihood`` in ``slamkit/model/unit_lm.py`` ->
  ``calc_nll`` in ``slamkit/utils/calculation_utils.py``): n + 1 scored tokens. Prompts for
  generation drop the trailing ``<S>`` (``UnitTokeniser.build_prompt``).

Which ids are scored (:meth:`UnitVocab.scoring_ids`): ``prefix units`` for ``twistlm`` and
``twist``, ``<S> units <S>`` for ``slamkit``. Our own models are trained on ``BOS u EOS`` but
scored on the units only, by choice: the score then covers the same tokens as TWIST's (which has
no end token), so our numbers stay comparable with TWIST's and with earlier runs. Only
``slamkit`` scores the end token, because its reference does.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Convention = Literal["twistlm", "twist", "slamkit"]


@dataclass(frozen=True)
class UnitVocab:
    """How units map to model token ids.

    Attributes:
        n_units: number of k-means units (ids 0..n_units-1 before the offset).
        offset: token id of unit 0.
        pad_id: id used for padding (never scored).
        bos_id: id prepended to every utterance, or None (TWIST).
        eos_id: id appended when training, or None.
        vocab_size: rows of the model's embedding table (>= offset + n_units).
        convention: which released format this follows.
    """

    n_units: int
    offset: int
    pad_id: int
    bos_id: int | None
    eos_id: int | None
    vocab_size: int
    convention: Convention = "twistlm"

    def __post_init__(self) -> None:
        if self.n_units <= 0:
            raise ValueError(f"n_units must be positive, got {self.n_units}")
        if self.offset + self.n_units > self.vocab_size:
            raise ValueError(
                f"units need ids up to {self.offset + self.n_units - 1} "
                f"but vocab_size is {self.vocab_size}"
            )

    # ---- constructors for the three conventions ----
    @classmethod
    def twistlm(cls, n_units: int) -> UnitVocab:
        return cls(n_units, offset=3, pad_id=0, bos_id=1, eos_id=2, vocab_size=n_units + 3)

    @classmethod
    def twist(cls, n_units: int, offset: int, pad_id: int, vocab_size: int) -> UnitVocab:
        return cls(n_units, offset, pad_id, None, None, vocab_size, "twist")

    @classmethod
    def slamkit(cls, n_units: int) -> UnitVocab:
        return cls(
            n_units,
            offset=2,
            pad_id=0,
            bos_id=1,
            eos_id=1,
            vocab_size=n_units + 2,
            convention="slamkit",
        )

    @property
    def scores_eos(self) -> bool:
        """Whether scoring includes the end token after the units (SlamKit only, see above)."""
        return self.convention == "slamkit" and self.eos_id is not None

    def with_n_units(self, n_units: int) -> UnitVocab:
        """The same layout with a different unit count (ids ``offset .. offset+n_units-1``)."""
        return dataclasses.replace(self, n_units=int(n_units))

    # ---- mapping ----
    def units_to_ids(self, units: Tensor) -> Tensor:
        """(..., T) unit indices -> (..., T) token ids. Raises on out-of-range units."""
        units = torch.as_tensor(units, dtype=torch.long)
        if units.numel() and (int(units.min()) < 0 or int(units.max()) >= self.n_units):
            raise ValueError(
                f"unit ids must lie in [0, {self.n_units}); got range "
                f"[{int(units.min())}, {int(units.max())}]"
            )
        return units + self.offset

    def is_unit_id(self, ids: Tensor) -> Tensor:
        ids = torch.as_tensor(ids)
        return (ids >= self.offset) & (ids < self.offset + self.n_units)

    def ids_to_units(self, ids: Tensor) -> Tensor:
        """1-D token ids -> unit indices, dropping every non-unit id (pad, bos, eos, text)."""
        ids = torch.as_tensor(ids, dtype=torch.long)
        return ids[self.is_unit_id(ids)] - self.offset

    def prefix(self) -> list[int]:
        """Ids put before an utterance's units when scoring or prompting."""
        return [] if self.bos_id is None else [self.bos_id]

    def utterance_ids(self, units: Tensor, add_eos: bool = False) -> Tensor:
        """1-D ids ``[prefix] units [eos]`` for one utterance."""
        ids = self.units_to_ids(units).reshape(-1)
        parts = [torch.tensor(self.prefix(), dtype=torch.long), ids]
        if add_eos and self.eos_id is not None:
            parts.append(torch.tensor([self.eos_id], dtype=torch.long))
        return torch.cat(parts)

    def scoring_ids(self, units: Tensor) -> Tensor:
        """1-D ids that scoring feeds the model for one utterance; every id after the first is
        scored. ``[prefix] units``, plus the end token under ``slamkit`` (``<S> units <S>``)."""
        return self.utterance_ids(units, add_eos=self.scores_eos)

    def unit_logits_mask(self) -> Tensor:
        """(vocab_size,) bool: True at ids that are units (for sampling units only)."""
        mask = torch.zeros(self.vocab_size, dtype=torch.bool)
        mask[self.offset : self.offset + self.n_units] = True
        return mask

    # ---- (de)serialisation ----
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> UnitVocab:
        return cls(**d)
