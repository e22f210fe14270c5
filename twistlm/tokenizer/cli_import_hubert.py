"""Convert a fairseq HuBERT checkpoint (.pt) into a transformers HubertModel dir, without fairseq.

  twistlm import-hubert mhubert_base_25hz_cp_mls_cv_sp_fisher.pt --out mhubert25hz_hf

The output dir loads with HubertModel.from_pretrained and with
`twistlm fit-kmeans --features hubert --model DIR ...`; twistlm_hubert.json records the
waveform-normalisation flag (fairseq task.normalize) and the hop (320 = 50 Hz, 640 = 25 Hz).
The checkpoint is read with torch.load(weights_only=True) plus inert stand-ins for its config
classes (argparse / omegaconf / fairseq enums); anything else is refused unless --trust-pickle.
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="fairseq HuBERT .pt")
    p.add_argument("--out", required=True, help="HF model dir to write")
    p.add_argument(
        "--trust-pickle",
        action="store_true",
        help="allow arbitrary pickled objects (only for trusted files)",
    )


def run(args: argparse.Namespace) -> int:
    from twistlm.tokenizer.fairseq_import import import_fairseq_hubert, save_imported
    from twistlm.tokenizer.hubert import conv_geometry
    from twistlm.tokenizer.kmeans import UnsafeFileError

    try:
        model, normalize = import_fairseq_hubert(args.checkpoint, trust_pickle=args.trust_pickle)
    except UnsafeFileError as e:
        print(f"error: {e}")
        return 2
    save_imported(model, normalize, args.out, source=args.checkpoint)
    hop, _ = conv_geometry(model.config.conv_kernel, model.config.conv_stride)
    print(
        f"wrote {args.out}: {model.config.num_hidden_layers} layers, hidden {model.config.hidden_size}, "
        f"hop {hop} ({16000 / hop:g} Hz), normalize={normalize}"
    )
    return 0
